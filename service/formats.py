"""Tabular wire formats: JSON rows for small sets, Parquet and Arrow IPC stream for any size."""

import io

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

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


def read_table(body: bytes, media_type: str) -> pd.DataFrame:
    """Parquet or Arrow IPC stream bytes -> DataFrame (timestamps keep their timezone). Raises BodyUnreadable."""
    try:
        if media_type == PARQUET:
            table = pq.read_table(io.BytesIO(body))
        else:
            table = ipc.open_stream(io.BytesIO(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise BodyUnreadable(media_type, str(exc)) from None
    ints = {pa.int8(), pa.int16(), pa.int32(), pa.int64()}
    return table.to_pandas(types_mapper=lambda t: pd.Int64Dtype() if t in ints else None)


def write_table(frame: pd.DataFrame, media_type: str) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    if media_type == PARQUET:
        pq.write_table(table, sink)
    else:
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def negotiate(accept: str | None, default: str = JSON, supported: tuple[str, ...] = (JSON, *BINARY)) -> str:
    """The response media type: the first of ``supported`` named in ``Accept`` (order as given); a
    wildcard (``*/*``, ``application/*``) or no ``Accept`` at all gives ``default``.

    Raises:
        NotAcceptable: ``Accept`` names only types we cannot produce (``q=0`` counts as not named).
    """
    named = (accept or "").strip()
    if not named:
        return default
    for part in named.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media in supported:
            return media
        if media in ("*/*", "application/*"):
            return default
    raise NotAcceptable(named, supported)
