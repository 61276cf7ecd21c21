"""``as_of``: the lineage graph as it was at a version or a time, one query parameter for every lineage route.

``as_of`` is a version number (``3``: the graph right after ``feastline apply`` recorded version 3) or
an ISO 8601 time with an offset (``2024-05-01T12:00:00Z``; encode ``+`` as ``%2B``: the graph as it was
then); omitted, the current graph. Anything else is a 422 naming ``query.as_of``; a version never
recorded, or a time before the first recorded version, is a 404 naming it (no graph is invented for a
time the store knows nothing of).
"""

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from lineage import LineageGraph, LineageStore
from lineage.versions import NoVersionAtTime, VersionNotFound
from service.errors import at_field

AsOf = Annotated[
    str | None,
    Query(description="version number (1, 2, ...) or ISO 8601 time with offset; omit for now", examples=["1"]),
]


def parse_as_of(text: str | None) -> int | datetime | None:
    """``"3"`` -> 3, ``"2024-05-01T12:00:00Z"`` -> aware datetime; anything else is a 422 naming ``as_of``."""
    if text is None:
        return None
    if text.isascii() and text.isdigit() and 1 <= int(text) < 2**63:
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)  # out of range near year 1 / 9999 -> OverflowError
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        problem = "expected a version number >= 1 or an ISO 8601 time with an offset (e.g. 2024-05-01T12:00:00Z)"
        error = {"type": "value_error", "loc": ("query", "as_of"), "msg": f"{problem}, got {text!r}", "input": text}
        raise RequestValidationError([error])
    return moment


def graph_as_of(lineage: LineageStore, as_of: str | None) -> LineageGraph:
    """The graph ``as_of`` designates (shared and cached: query it, do not modify it).

    Raises:
        RequestValidationError: ``as_of`` is neither a version number nor a time with an offset (422).
        VersionNotFound: no such version, or a time before the first version (404, field ``query.as_of``).
    """
    moment = parse_as_of(as_of)
    try:
        if isinstance(moment, datetime):
            first = lineage.first_version()
            if first is None:
                raise NoVersionAtTime(moment, None, None)
            if moment < first.created_at:
                raise NoVersionAtTime(moment, first.number, first.created_at)
        return lineage.graph_as_of(moment)
    except VersionNotFound as exc:
        raise at_field(exc, "query.as_of") from None


def keep_as_of(url: str, as_of: str | None) -> str:
    """``url`` with ``as_of`` added (URL-encoded), so a link shows the graph at the same moment; unchanged
    when ``as_of`` is None (the current graph)."""
    if as_of is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}as_of={quote(as_of, safe=':')}"
