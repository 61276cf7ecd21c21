"""Request body limits: a size per route (413) and a read timeout for slow bodies (408).

:class:`RequestLimits` is a pure ASGI middleware. It picks the route's limit from ``(method, path)``
(and, for ``POST /training-sets``, the content type: JSON or a Parquet/Arrow table), then hands the
app a ``receive`` that counts the body's bytes and bounds each wait for the next part of it:

- a ``Content-Length`` above the limit is refused on the first read, before any byte is read;
- a body without ``Content-Length`` (chunked) is refused as soon as it passes the limit;
- a wait for the next part of a body longer than ``FEASTLINE_BODY_TIMEOUT_SECONDS`` is a 408, with
  ``Connection: close`` (the client may still be sending).

The refusals are exceptions raised where the route reads its body, rendered by the error table of
:mod:`service.errors` as ``application/problem+json`` naming ``body``, the limit and the setting that
raises it. So a 50 MiB JSON body is refused at once, without reading it, let alone parsing it on the
event loop.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import Settings

TABLE_TYPES = ("application/vnd.apache.parquet", "application/vnd.apache.arrow.stream")


@dataclass(frozen=True)
class BodyLimit:
    """The largest body a route takes: ``limit`` bytes, raised by the ``setting`` environment variable;
    ``hint``: what to do instead of sending a bigger one."""

    limit: int
    setting: str
    hint: str = ""


class RequestBodyTooLarge(HTTPException):
    """The request body is bigger than its route takes: 413, nothing was read or done."""

    field = "body"

    def __init__(self, route: str, limit: BodyLimit, size: int | None):
        self.route, self.limit, self.size = route, limit, size
        sent = f"of {size:,} bytes " if size is not None else ""
        detail = (
            f"the request body {sent}is larger than the {limit.limit:,} bytes {route} takes "
            f"(FEASTLINE_{limit.setting}){limit.hint}"
        )
        super().__init__(413, detail)

    def __str__(self) -> str:
        return str(self.detail)

    def details(self) -> dict[str, Any]:
        return {"limit_bytes": self.limit.limit, "size_bytes": self.size, "setting": f"FEASTLINE_{self.limit.setting}"}


class RequestBodyTimeout(HTTPException):
    """The next part of the request body did not arrive in time: 408, the connection is closed."""

    field = "body"

    def __init__(self, seconds: float, received: int):
        self.seconds, self.received = seconds, received
        detail = (
            f"the request body stopped arriving: nothing for {seconds:g} s after {received:,} bytes "
            "(FEASTLINE_BODY_TIMEOUT_SECONDS)"
        )
        super().__init__(408, detail, headers={"Connection": "close"})

    def __str__(self) -> str:
        return str(self.detail)

    def details(self) -> dict[str, Any]:
        return {"timeout_seconds": self.seconds, "received_bytes": self.received}


def body_limit(settings: Settings, method: str, path: str, content_type: str) -> tuple[str, BodyLimit]:
    """``(route, its limit)`` for a request: the route as named in messages (``POST /push``)."""
    route = f"{method} {path}"
    if method == "POST" and path == "/get-online-features":
        return route, BodyLimit(settings.max_online_body_bytes, "MAX_ONLINE_BODY_BYTES")
    if method == "POST" and path == "/push":
        hint = "; push fewer rows per request, or append large batches to the source's Parquet file"
        return route, BodyLimit(settings.max_push_body_bytes, "MAX_PUSH_BODY_BYTES", hint)
    if method == "POST" and path == "/training-sets":
        if content_type in TABLE_TYPES:
            return route, BodyLimit(settings.max_training_set_table_bytes, "MAX_TRAINING_SET_TABLE_BYTES")
        hint = "; send the entity table as Parquet or Arrow (content-type application/vnd.apache.parquet)"
        return f"{route} as JSON", BodyLimit(settings.max_training_set_json_bytes, "MAX_TRAINING_SET_JSON_BYTES", hint)
    return route, BodyLimit(settings.max_body_bytes, "MAX_BODY_BYTES")


class RequestLimits:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings
        self.timeout = settings.body_timeout_seconds
        self._limits: dict[tuple[str, str, str], tuple[str, BodyLimit]] = {}  # (method, path, type) -> limit

    def _limit(self, method: str, path: str, content_type: str) -> tuple[str, BodyLimit]:
        key = (method, path, content_type if path == "/training-sets" else "")
        found = self._limits.get(key)
        if found is None:
            found = body_limit(self.settings, method, path, content_type)
            if len(self._limits) < 1024:  # paths with ids in them are not kept
                self._limits[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type, length = "", None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1").split(";")[0].strip().lower()
            elif key == b"content-length":
                length = value
        route, limit = self._limit(scope["method"], scope["path"], content_type)
        declared = int(length) if length is not None and length.strip().isdigit() else None
        timeout = self.timeout
        received = 0
        complete = False

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body: a wait for the disconnect, not bounded
                return await receive()
            if declared is not None and declared > limit.limit:
                raise RequestBodyTooLarge(route, limit, declared)
            message = await _within(timeout, receive, received)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.limit:
                    raise RequestBodyTooLarge(route, limit, declared)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, bounded_receive, send)


async def _within(timeout: float, receive: Receive, received: int) -> Message:
    """``await receive()``, or RequestBodyTimeout after ``timeout`` seconds (what ``asyncio.timeout`` does,
    at a third of its cost per call: one timer that cancels this task if it is still waiting)."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await receive()
    except asyncio.CancelledError:
        if expired:
            task.uncancel()
            raise RequestBodyTimeout(timeout, received) from None
        raise
    finally:
        timer.cancel()
