"""Worker pools: where blocking work runs, so that the event loop only accepts, routes and answers.

Nothing that can wait on I/O (the online store, Redis included; the lineage database; files) or take
more than about a millisecond of CPU (decoding and encoding large JSON or Parquet bodies, validation,
training sets, lineage queries) runs on the event loop. It runs on a thread of one of three pools,
each with threads of its own, so that one kind of work stuck on a frozen store cannot starve another:

- ``online``: online reads (``FEASTLINE_ONLINE_WORKERS`` threads), the latency-critical path;
- ``work``: everything else a request does: pushes, training sets, lineage, models, quarantine,
  materialization requests, metrics (``FEASTLINE_WORKERS`` threads);
- ``health``: ``GET /health`` and ``GET /health/ready`` (2 threads), so liveness never waits behind
  the others.

**Bounded.** A pool holds at most ``threads + queue`` requests (running or waiting for a thread). One
more is not queued: it is answered at once with 503 and ``Retry-After`` (:class:`Overloaded`), so an
overload (or a store that stopped answering) sheds load instead of piling up requests and memory. A
request that waited ``FEASTLINE_QUEUE_TIMEOUT_SECONDS`` without getting a thread is dropped before it
starts (503 as well): nothing of it was done. Work that has started is never abandoned half-way,
except an online read past ``FEASTLINE_STORE_TIMEOUT_SECONDS`` (a read changes nothing; its thread
is counted until it returns, so the bound stays honest).

Routers use it two ways: ``APIRouter(route_class=WorkerRoute)`` runs every plain ``def`` route of the
router in the ``work`` pool (:class:`HealthRoute`: the ``health`` pool), its answer rendered to JSON
bytes there too; an ``async def`` route awaits :meth:`WorkerPool.run` for each blocking step itself.
``tests/test_nonblocking.py`` checks that every route is one or the other.
"""

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import ResponseValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from service.settings import Settings

T = TypeVar("T")

HEALTH_THREADS, HEALTH_QUEUE = 2, 32


class Overloaded(Exception):
    """A pool is full (``threads + queue`` requests running or waiting), or no thread came free in time:
    503 with ``Retry-After``; nothing of the request was done."""

    field = None

    def __init__(self, pool: str, capacity: int, retry_after: int, waited: float | None = None):
        self.pool, self.capacity, self.retry_after, self.waited = pool, capacity, retry_after, waited
        why = (
            f"no {pool} worker came free within {waited:g} s"
            if waited is not None
            else f"the {pool} workers are all busy and {capacity} requests are in"
        )
        super().__init__(f"the service is overloaded: {why}; nothing was done, retry in {retry_after} s")

    def details(self) -> dict[str, Any]:
        return {"pool": self.pool, "capacity": self.capacity, "retry_after_seconds": self.retry_after}


class WorkerPool:
    """``threads`` threads for blocking calls, and room for ``queue`` more requests waiting for one."""

    def __init__(self, name: str, threads: int, queue: int, retry_after: int, queue_timeout: float | None = None):
        self.name, self.threads, self.queue = name, threads, queue
        self.retry_after, self.queue_timeout = retry_after, queue_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in = 0

    @property
    def capacity(self) -> int:
        return self.threads + self.queue

    @property
    def in_flight(self) -> int:
        """Requests running or waiting in this pool (a timed-out read still running counts until it returns)."""
        return self._in

    def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix=f"feastline-{self.name}")

    def shutdown(self) -> None:
        """Stop taking work; waiting requests are dropped, running ones finish on their own threads."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _release(self, _: Future[Any] | None) -> None:
        with self._lock:
            self._in -= 1

    async def run(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        timeout: float | None = None,
        timed_out: Callable[[], Exception] | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(*args, **kwargs)`` on a thread of this pool (in a copy of the caller's context); its result.

        Args:
            timeout: seconds after which the caller stops waiting for a *started* call and raises
                ``timed_out()`` (the call finishes on its thread; use it only for calls that change
                nothing, such as reads). None: wait for the result.

        Raises:
            Overloaded: the pool is full, or no thread came free within the pool's ``queue_timeout``
                (the call never started).
            whatever ``fn`` raises, and ``timed_out()`` on ``timeout``.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            executor = self._executor
            if executor is None:
                raise RuntimeError(f"the {self.name} worker pool is not running (app lifespan not started)")
            if self._in >= self.capacity:
                raise Overloaded(self.name, self.capacity, self.retry_after)
            self._in += 1
        try:
            future = executor.submit(contextvars.copy_context().run, fn, *args, **kwargs)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        waiter = asyncio.wrap_future(future, loop=loop)
        expired = ""

        def queue_expired() -> None:  # cancel() succeeds only while the call waits for a thread
            nonlocal expired
            if future.cancel():
                expired = "queue"

        def deadline_expired() -> None:  # stop waiting; a call that has started finishes on its thread
            nonlocal expired
            expired = "deadline"
            waiter.cancel()

        timers = []
        if self.queue_timeout is not None:
            timers.append(loop.call_later(self.queue_timeout, queue_expired))
        if timeout is not None:
            timers.append(loop.call_later(timeout, deadline_expired))
        try:
            return await waiter
        except asyncio.CancelledError:
            if expired == "queue":
                raise Overloaded(self.name, self.capacity, self.retry_after, waited=self.queue_timeout) from None
            if expired == "deadline":
                raise (timed_out or TimeoutError)() from None
            raise  # the request itself was cancelled (client gone): the call is dropped if it has not started
        finally:
            for timer in timers:
                timer.cancel()


class Workers:
    """The app's three pools (see the module docstring), sized by ``settings``; started by the app's lifespan."""

    def __init__(self, settings: Settings):
        retry, wait = settings.retry_after_seconds, settings.queue_timeout_seconds
        self.online = WorkerPool("online", settings.online_workers, settings.online_queue, retry, wait)
        self.work = WorkerPool("work", settings.workers, settings.work_queue, retry, wait)
        self.health = WorkerPool("health", HEALTH_THREADS, HEALTH_QUEUE, retry, wait)
        self.store_timeout = settings.store_timeout_seconds

    def pool(self, name: str) -> WorkerPool:
        pool = getattr(self, name)
        assert isinstance(pool, WorkerPool), name
        return pool

    def start(self) -> None:
        for pool in (self.online, self.work, self.health):
            pool.start()

    def shutdown(self) -> None:
        for pool in (self.online, self.work, self.health):
            pool.shutdown()


def workers_of(request: Request) -> Workers:
    workers: Workers = request.app.state.workers
    return workers


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def json_answer(content: Any, status_code: int = 200) -> Response:
    """``content`` as JSON bytes, encoded as FastAPI encodes a ``dict[str, Any]`` answer (pydantic's
    ``dump_json``: NaN as null, datetimes ISO 8601); for a route that renders its answer on a worker."""
    return Response(_ANY.dump_json(content), status_code=status_code, media_type="application/json")


def _render(route: APIRoute, result: Any, sub: Response | None = None) -> Response:
    """``result`` of a route as FastAPI answers it (validated against the response model, JSON bytes), here on
    the worker thread instead of on the event loop; ``sub``: the ``Response`` parameter the route set
    headers or a status on, merged in as FastAPI merges it."""
    if isinstance(result, Response):
        return result
    rendered = _rendered(route, result)
    if sub is not None:
        if sub.status_code:
            rendered.status_code = sub.status_code
        rendered.headers.raw.extend(sub.headers.raw)
    return rendered


def _rendered(route: APIRoute, result: Any) -> Response:
    status = route.status_code or 200
    field = route.response_field
    if field is None:
        return JSONResponse(jsonable_encoder(result), status_code=status)
    value, errors = field.validate(result, {}, loc=("response",))
    if errors:
        raise ResponseValidationError(errors=errors, body=result)
    options = dict(
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    if isinstance(route.response_class, DefaultPlaceholder):
        return Response(field.serialize_json(value, **options), status_code=status, media_type="application/json")
    response_class: type[Response] = route.response_class
    return response_class(field.serialize(value, **options), status_code=status)


_REQUEST = "feastline_worker_request_"  # the extra parameter through which an offloaded route gets its Request


def offload(fn: Callable[..., Any], pool: str = "work", route: APIRoute | None = None) -> Callable[..., Any]:
    """``fn`` (a plain function: an endpoint, or a dependency) as an ``async`` one that runs it in ``pool``;
    FastAPI sees the same parameters (plus the ``Request``, to reach the app's pools, unless ``fn`` takes
    it already). With ``route``, the answer is rendered there too (:func:`_render`), as FastAPI would.

    A dependency: ``Depends(offload(select))``, so that FastAPI does not run it in its own thread pool.
    """
    signature = inspect.signature(fn)
    own = next((p.name for p in signature.parameters.values() if p.annotation is Request), None)
    name = own or _REQUEST
    sub = next((p.name for p in signature.parameters.values() if p.annotation is Response), None)

    def call(kwargs: dict[str, Any]) -> Any:
        result = fn(**kwargs)
        return result if route is None else _render(route, result, kwargs[sub] if sub else None)

    @functools.wraps(fn)
    async def offloaded(**kwargs: Any) -> Any:
        request: Request = kwargs[name] if own else kwargs.pop(name)
        return await workers_of(request).pool(pool).run(call, kwargs)

    if own is None:
        extra = inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        offloaded.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])  # type: ignore[attr-defined]
    offloaded.feastline_pool = pool  # type: ignore[attr-defined]
    return offloaded


class WorkerRoute(APIRoute):
    """An ``APIRoute`` whose plain ``def`` endpoint runs in the app's ``work`` pool, answer rendered there.

    Set per router: ``APIRouter(route_class=WorkerRoute)``. An ``async def`` endpoint is left as it is (it
    offloads its blocking steps itself).
    """

    pool = "work"

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any):
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = offload(endpoint, self.pool, self)
        super().__init__(path, endpoint, **kwargs)


class HealthRoute(WorkerRoute):
    """:class:`WorkerRoute` on the ``health`` pool: liveness and readiness never wait behind other work."""

    pool = "health"
