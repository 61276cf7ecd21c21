"""Closed-loop HTTP load: ``concurrency`` clients post the same JSON body over keep-alive connections.

Each client sends its next request as soon as the previous answer (body included) has arrived. A
warm-up phase is run and discarded; the measurement stops after ``max_requests`` requests or
``max_seconds``, whichever comes first (requests in flight then are completed and counted).
"""

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

HEADERS = {"content-type": "application/json"}


@dataclass
class LoadResult:
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def ok(self) -> int:
        return self.requests - sum(self.errors.values())

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies (ms), ``p`` in (0, 100]."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def rps(self) -> float:
        """Successful requests per second of measurement wall time."""
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0


async def _phase(
    client: httpx.AsyncClient, url: str, body: bytes, concurrency: int, max_requests: int, max_seconds: float
) -> LoadResult:
    result = LoadResult(concurrency)
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def client_loop() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            try:
                answer = await client.post(url, content=body, headers=HEADERS)
                status = answer.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                result.errors[str(status)] += 1

    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result


async def _load(
    url: str, body: bytes, concurrency: int, warmup: int, max_requests: int, max_seconds: float
) -> tuple[LoadResult, LoadResult]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0)) as client:
        warm = await _phase(client, url, body, concurrency, warmup, max_seconds)
        measured = await _phase(client, url, body, concurrency, max_requests, max_seconds)
    return warm, measured


def run_load(
    url: str, body: bytes, concurrency: int, warmup: int, max_requests: int, max_seconds: float
) -> tuple[LoadResult, LoadResult]:
    """Warm up with ``warmup`` requests, then measure; returns ``(warm-up, measurement)``."""
    return asyncio.run(_load(url, body, concurrency, warmup, max_requests, max_seconds))
