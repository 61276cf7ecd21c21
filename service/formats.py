"""Wire formats: JSON rows for small sets, Parquet and Arrow IPC stream for any size; JSON request bodies."""

import io
from collections import Counter
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from feast.value_type import ValueType
from pydantic import BaseModel, ValidationError

from service.training.offline.errors import EntityRowsInvalid
from service.value_types import to_json, to_json_column

PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON = "application/json"
BINARY = (PARQUET, ARROW_STREAM)


class BodyUnreadable(Exception):
    """The request body is not the format its content type says."""

    field = "body"

    def __init__(self, media_type: str, reason: str):
        self.media_type, self.reason = media_type, reason
        super().__init__(f"request body is not valid {media_type}: {reason}")

    def details(self) -> dict:
        return {"media_type": self.media_type}


class UnsupportedMediaType(Exception):
    """The request's ``Content-Type`` is none of the formats the endpoint reads."""

    field = "header.content-type"

    def __init__(self, media_type: str, supported: tuple[str, ...]):
        self.media_type, self.supported = media_type, supported
        super().__init__(f"content type {media_type!r} not supported; send {', '.join(supported)}")

    def details(self) -> dict[str, str | list[str]]:
        return {"media_type": self.media_type, "supported": list(self.supported)}


class NotAcceptable(Exception):
    """None of the types the request's ``Accept`` names can be produced (or JSON cannot carry the data)."""

    field = "header.accept"

    def __init__(self, accept: str, supported: tuple[str, ...], reason: str | None = None):
        self.accept, self.supported, self.reason = accept, supported, reason
        because = reason or f"Accept {accept!r} names none of the types this endpoint answers"
        super().__init__(f"{because}; ask for {', '.join(supported)}")

    def details(self) -> dict[str, str | list[str]]:
        return {"accept": self.accept, "supported": list(self.supported)}


# Arrow -> pandas nullable dtypes of the same width: integers stay integers (with nulls, unsigned too,
# no float64 detour that would lose digits beyond 2**53), booleans with nulls stay booleans.
NULLABLE_DTYPES: dict[pa.DataType, pd.api.extensions.ExtensionDtype] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def _refuse_duplicate_columns(names: list[str]) -> None:
    counts = Counter(names)
    if twice := [n for n, k in counts.items() if k > 1]:
        raise EntityRowsInvalid(
            [
                {"row": None, "field": n, "problem": f"names {counts[n]} columns; column names must be unique"}
                for n in twice
            ]
        )


def read_table(body: bytes, media_type: str) -> pd.DataFrame:
    """Parquet or Arrow IPC stream bytes -> DataFrame (timestamps keep their timezone; integers and
    booleans, with or without nulls, as pandas nullable dtypes of the same width).

    Raises:
        BodyUnreadable: the bytes are not that format.
        EntityRowsInvalid: two columns share a name (each such name listed).
    """
    try:
        if media_type == PARQUET:
            _refuse_duplicate_columns(pq.ParquetFile(io.BytesIO(body)).schema_arrow.names)
            table = pq.read_table(io.BytesIO(body))
        else:
            table = ipc.open_stream(io.BytesIO(body)).read_all()
            _refuse_duplicate_columns(table.schema.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BodyUnreadable(media_type, str(exc)) from None
    return table.to_pandas(types_mapper=NULLABLE_DTYPES.get)


def write_table(frame: pd.DataFrame, media_type: str) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    if media_type == PARQUET:
        pq.write_table(table, sink)
    else:
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def _quality(params: list[str]) -> float:
    """The ``q`` of one ``Accept`` entry (1 when absent; an unreadable q counts as 0: not accepted)."""
    for p in params:
        key, _, value = p.partition("=")
        if key.strip() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def acceptable(accept: str | None, default: str = JSON, supported: tuple[str, ...] = (JSON, *BINARY)) -> list[str]:
    """The types we can answer that ``Accept`` allows, most preferred first: by ``q`` (1 when not
    given), ties in the order listed; ``q=0`` means "not this one". A wildcard (``*/*``,
    ``application/*``) stands, at its place and ``q``, for every supported type the header does not
    name itself, ``default`` first; no ``Accept`` at all allows every type, ``default`` first.

    Raises:
        NotAcceptable: ``Accept`` allows none of the types we can produce.
    """
    named = (accept or "").strip()
    if not named:
        return [default, *(m for m in supported if m != default)]
    entries = []
    for part in named.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        entries.append((media, _quality(params)))
    explicit = {m for m, _ in entries if m in supported}
    ranked: dict[str, tuple[float, int]] = {}  # type -> (q, position); the first mention of a type counts
    position = 0
    for media, q in entries:
        if media in ("*/*", "application/*"):
            covered = [m for m in (default, *supported) if m not in explicit]
        else:
            covered = [media] if media in supported else []
        for m in covered:
            if m not in ranked:
                ranked[m] = (q, position)
                position += 1
    order = sorted((m for m, (q, _) in ranked.items() if q > 0), key=lambda m: (-ranked[m][0], ranked[m][1]))
    if not order:
        raise NotAcceptable(named, supported)
    return order


def negotiate(accept: str | None, default: str = JSON, supported: tuple[str, ...] = (JSON, *BINARY)) -> str:
    """The response media type: the first of :func:`acceptable`.

    Raises:
        NotAcceptable: ``Accept`` names only types we cannot produce, or only with ``q=0``.
    """
    return acceptable(accept, default, supported)[0]


M = TypeVar("M", bound=BaseModel)


def parse_json_body(body: bytes, model: type[M]) -> M:
    """``body`` (JSON) as ``model``, with FastAPI's error shapes.

    Raises:
        BodyUnreadable: an empty body (400).
        RequestValidationError: malformed JSON (400, the message gives line and column) or a body that
            does not fit ``model`` (422, each problem at its path in the body).
    """
    if not body.strip():
        raise BodyUnreadable(JSON, "the request body is empty")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def require_json(request: Request) -> None:
    """Refuse a request body not declared ``application/json``: the check :func:`json_body` makes, as a
    dependency for routes that take their body as a FastAPI body parameter.

    Raises:
        UnsupportedMediaType: ``Content-Type`` missing or other than ``application/json`` (415).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JSON:
        raise UnsupportedMediaType(media or "(none)", (JSON,))


async def json_content_type(request: Request) -> None:
    """:func:`require_json` as a route dependency (``dependencies=[Depends(json_content_type)]``); async, so
    FastAPI calls it on the event loop instead of a worker thread."""
    require_json(request)


async def json_bytes(request: Request) -> bytes:
    """The bytes of a request body declared JSON, unparsed: parse them off the event loop with
    :func:`parse_json_body` (a large body takes its parser ~30 ms per MiB, holding the GIL).

    Raises:
        UnsupportedMediaType: ``Content-Type`` missing or other than ``application/json`` (415, field
            ``header.content-type``); nothing is guessed from the bytes.
        RequestBodyTooLarge, RequestBodyTimeout: over the route's limit, or too slow (service.limits).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JSON:
        raise UnsupportedMediaType(media or "(none)", (JSON,))
    return await request.body()


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``, as a FastAPI body parameter would give it, but refusing a
    body that is not declared JSON and locating malformed JSON. Parses on the caller's thread: routes
    take :func:`json_bytes` and parse in a worker.

    Raises:
        UnsupportedMediaType: see :func:`json_bytes`.
        BodyUnreadable, RequestValidationError: see :func:`parse_json_body`.
    """
    return parse_json_body(await json_bytes(request), model)


def standalone_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its nested models (pydantic's ``$defs``) inlined where they are
    referenced, so the schema can sit anywhere in an OpenAPI document: a ``#/$defs/...`` reference is
    resolved from the document's root by OpenAPI tools (ReDoc fails on it). Nested models must not be
    recursive.

    Raises:
        ValueError: a nested model refers to itself (directly or not).
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:
                    raise ValueError(f"{model.__name__}: {name} is recursive; it cannot be inlined")
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(defs[name], (*seen, name)), **inline(rest, seen)}
            return {k: inline(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, seen) for v in node]
        return node

    inlined: dict[str, Any] = inline(schema, ())
    return inlined


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that reads its body with :func:`json_bytes`."""
    return {"requestBody": {"required": True, "content": {JSON: {"schema": standalone_schema(model)}}}}


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _object_json(value: Any) -> Any:
    """A value of an object column as JSON. Arrays keep their item type: an ``Array(Float32)`` feature
    (float32 arrays) at float32 precision, an ``Array(UnixTimestamp)`` one (datetime64 arrays, UTC)
    as ISO 8601 strings, as their scalars are answered."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.float32:
            return to_json(value, ValueType.FLOAT_LIST)
        if value.dtype.kind == "M":
            return [to_json(pd.Timestamp(t), ValueType.UNIX_TIMESTAMP) for t in value]
    return to_json(value, None)


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows at full precision: floats as Python floats (shortest round-trip form of their
    width: a float32 column's 1.111 is 1.111, and so is an item of a float32 array), lists (Array
    features) as lists, bytes as base64, timestamps as ISO 8601 UTC with ``Z`` (fractions of a second
    kept, in arrays too), missing values (null, NaN, NaT) as null.

    Raises:
        NotAcceptable: a float column holds ±inf, which JSON cannot carry (names the columns and
            first rows); Parquet and Arrow can.
    """
    infinite = {}
    for name, col in frame.items():
        if pd.api.types.is_float_dtype(col.dtype):
            rows = np.flatnonzero(np.isinf(col.to_numpy(dtype="float64", na_value=np.nan)))
            if len(rows):
                infinite[str(name)] = rows[:10].tolist()
    if infinite:
        where = "; ".join(f"{c} at rows {r}" for c, r in infinite.items())
        raise NotAcceptable(JSON, BINARY, f"JSON cannot carry the infinite values in {where}")
    columns: dict[str, list[Any]] = {}
    for name, col in frame.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            codes, stamps = pd.factorize(col)  # each distinct timestamp spelled once; NaT is code -1
            spelled = [_iso(t) for t in stamps]
            columns[str(name)] = [spelled[c] if c >= 0 else None for c in codes.tolist()]
        elif col.dtype == np.dtype("float32"):  # at the precision declared: 1.111, not 1.1109999418258667
            columns[str(name)] = to_json_column(col.tolist(), ValueType.FLOAT)
        elif col.dtype == np.dtype("object"):  # lists (Array features), bytes (as base64)
            values = col.tolist()
            arrays = any(isinstance(v, np.ndarray) for v in values)  # Array features: their item type rules
            columns[str(name)] = [_object_json(v) for v in values] if arrays else to_json_column(values, None)
        else:
            columns[str(name)] = _plain_column(col)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _plain_column(col: pd.Series) -> list[Any]:
    """A column of numbers or booleans as Python values, missing as None: what
    ``col.astype(object).where(col.notna(), None).tolist()`` gives (its fallback), without pandas'
    per-column ``where`` for the dtypes of training sets (numpy ints and booleans have no missing
    value; float64's NaN and the nullable dtypes' NA become None)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return col.to_numpy().tolist()
    if dtype == np.dtype("float64"):
        return [None if v != v else v for v in col.to_numpy().tolist()]  # only NaN differs from itself
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.name in _NULLABLE:
        return col.to_numpy(dtype=object, na_value=None).tolist()
    return col.astype(object).where(col.notna(), None).tolist()


_NULLABLE = frozenset(
    {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "boolean", "Float32", "Float64"}
)


def json_answer(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``content`` (JSON-ready Python values without NaN or ±inf, as :func:`frame_to_records` makes
    them) as an ``application/json`` response: the JSON ``JSONResponse`` gives (UTF-8, compact),
    encoded by orjson, several times faster on rows; what orjson refuses (an integer beyond 64 bits,
    a type it does not know) goes through ``JSONResponse`` as before."""
    try:
        body = orjson.dumps(content)
    except TypeError:  # orjson.JSONEncodeError: a type or an integer it does not encode
        return JSONResponse(content, status_code=status_code, headers=headers)
    return Response(body, status_code=status_code, headers=headers, media_type=JSON)
