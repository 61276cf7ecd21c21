"""``as_of``: the lineage graph as it was at a version or a time, one query parameter for every lineage route.

``as_of`` is a version number (``3``: the graph right after ``feastline apply`` recorded version 3) or
an ISO 8601 time with an offset (``2024-05-01T12:00:00Z``; encode ``+`` as ``%2B``: the graph as it was
then); omitted, the current graph. Anything else is a 422 naming ``query.as_of``; a version never
recorded (however large its number), or a time before the first recorded version (years 1 to 9999 are
all times), is a 404 naming it (no graph is invented for a time the store knows nothing of).
``AS_OF_SCHEMA`` says the same in the OpenAPI document.
"""

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from lineage import LineageGraph, LineageStore
from lineage.versions import NoVersionAtTime, VersionNotFound
from service.errors import at_field

VERSION_PATTERN = "^[0-9]*[1-9][0-9]*$"
AS_OF_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": VERSION_PATTERN, "description": "a version number, 1 or more"},
        {"type": "string", "format": "date-time", "description": "an RFC 3339 / ISO 8601 time with Z or an offset"},
    ]
}
AsOf = Annotated[
    str | None,
    Query(
        description="version number (1, 2, ...) or ISO 8601 time with offset; omit for now",
        examples=["1"],
        json_schema_extra=AS_OF_SCHEMA,
    ),
]


def parse_as_of(text: str | None) -> int | datetime | None:
    """``"3"`` -> 3, ``"2024-05-01T12:00:00Z"`` -> aware datetime; anything else is a 422 naming ``as_of``."""
    if text is None:
        return None
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # within a day of year 1 or 9999: before or after every version
            moment = (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
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
        if isinstance(moment, int) and moment >= 2**63:  # no database integer holds it: never recorded
            raise VersionNotFound(moment)
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
