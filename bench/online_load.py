"""Closed-loop HTTP load: ``concurrency`` clients post the same JSON body over keep-alive connections.

Each client sends its next request as soon as the previous answer (body included) has arrived. A
warm-up phase is run and discarded; the measurement stops after ``max_requests`` requests or
``max_seconds``, whichever comes first (requests in flight then are completed and counted).

The load runs in a child process of its own (``run_load`` starts it), so the client does not share an
interpreter, a heap or a garbage collector with the benchmark driver (which holds pandas frames and
Feast). The client is deliberately thin: one pre-encoded HTTP/1.1 request per body, written to an
asyncio stream (uvloop), the answer read as status line + headers + ``Content-Length`` bytes. An earlier
version used ``httpx.AsyncClient``; at concurrency 8 it spent more CPU per request than either server
and its own pauses dominated the p99 of both (see bench/RESULTS.md history).

Run as a script it prints one JSON object ``{"warm": {...}, "measured": {...}}`` of LoadResult fields.
"""

import argparse
import asyncio
import gc
import json
import math
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import uvloop


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


def encode_request(url: str, body: bytes) -> tuple[str, int, bytes]:
    """(host, port, the bytes of one ``POST`` of ``body`` as JSON to ``url``, keep-alive)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"need http://host:port/path, got {url!r}")
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.hostname}:{parts.port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return parts.hostname, parts.port, head.encode("ascii") + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request, read its whole answer; the HTTP status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise RuntimeError(f"the load client reads Content-Length answers only, got transfer-encoding {value!r}")
    if length is None:
        raise RuntimeError("answer without Content-Length")
    await reader.readexactly(length)
    return status


async def _phase(
    host: str, port: int, request: bytes, concurrency: int, max_requests: int, max_seconds: float
) -> LoadResult:
    result = LoadResult(concurrency)
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def client_loop() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    status: int | str = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    status = type(exc).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    result.errors[str(status)] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result


async def _load(
    url: str, body: bytes, concurrency: int, warmup: int, max_requests: int, max_seconds: float
) -> tuple[LoadResult, LoadResult]:
    host, port, request = encode_request(url, body)
    warm = await _phase(host, port, request, concurrency, warmup, max_seconds)
    gc.collect()
    gc.freeze()
    gc.disable()  # the client's own collector stays out of the measured latencies
    try:
        measured = await _phase(host, port, request, concurrency, max_requests, max_seconds)
    finally:
        gc.enable()
    return warm, measured


def run_load(
    url: str, body: bytes, concurrency: int, warmup: int, max_requests: int, max_seconds: float
) -> tuple[LoadResult, LoadResult]:
    """Warm up with ``warmup`` requests, then measure, in a child process; returns ``(warm-up, measurement)``."""
    body_file = Path(f"/tmp/feastline-bench-body-{time.monotonic_ns()}.json")
    body_file.write_bytes(body)
    try:
        cmd = [sys.executable, __file__, url, str(body_file), str(concurrency), str(warmup), str(max_requests)]
        cmd.append(str(max_seconds))
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=max_seconds * 2 + 120)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"load client failed: {exc.stderr[-1500:]}") from exc
    finally:
        body_file.unlink(missing_ok=True)
    answer = json.loads(out.stdout)
    return tuple(  # type: ignore[return-value]
        LoadResult(r["concurrency"], r["latencies_ms"], Counter(r["errors"]), r["elapsed_s"])
        for r in (answer["warm"], answer["measured"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body_file", type=Path)
    parser.add_argument("concurrency", type=int)
    parser.add_argument("warmup", type=int)
    parser.add_argument("max_requests", type=int)
    parser.add_argument("max_seconds", type=float)
    args = parser.parse_args()
    body = args.body_file.read_bytes()
    warm, measured = uvloop.run(
        _load(args.url, body, args.concurrency, args.warmup, args.max_requests, args.max_seconds)
    )
    # asdict() would rebuild the errors Counter from (key, value) pairs, counting the pairs: pass them as a dict
    print(
        json.dumps(
            {name: {**asdict(r), "errors": dict(r.errors)} for name, r in (("warm", warm), ("measured", measured))}
        )
    )


if __name__ == "__main__":
    main()
