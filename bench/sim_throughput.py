"""Requests per second the simulator sustains, against the load of a fleet of 50 bots.

The simulator runs as its own process (`alura-bot sim`), the load generator in this one, so they
do not share a GIL. Two workloads: `GET /api/indicators/signals/all/1h` (what every bot polls each
tick) and session create + close (what moves money). The reference is 50 bots polling once a
second = 50 req/s; the verdict is the measured rate divided by that.

    python bench/sim_throughput.py [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

FLEET_RPS = 50.0
ASSETS = range(6)


def start_sim() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sim", "--port", "0", "--balance", "100000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", line)
        if found:
            return proc, found.group(1)
    raise RuntimeError("simulator did not start")


async def login(client: httpx.AsyncClient) -> str:
    key = "0x" + secrets.token_hex(32)
    address = Account.from_key(key).address
    ch = (await client.post("/auth/evm/challenge", json={"address": address})).json()
    sig = Account.sign_message(encode_defunct(text=ch["message"]), private_key=key).signature
    body = {"address": address, "signature": "0x" + bytes(sig).hex()}
    return str((await client.post("/auth/evm/verify", json=body)).json()["accessToken"])


async def run_load(url: str, seconds: float, concurrency: int, kind: str) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        tokens = [await login(client) for _ in range(concurrency)] if kind == "sessions" else []
        deadline = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            nonlocal errors
            headers = {"Authorization": f"Bearer {tokens[i]}"} if tokens else {}
            asset = i % 6
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                if kind == "signals":
                    r = await client.get("/api/indicators/signals/all/1h")
                    ok = r.status_code == 200
                else:
                    r = await client.post(
                        "/trading-sessions",
                        headers=headers,
                        json={"budget": 10, "profitTarget": 2, "assetIndex": asset},
                    )
                    ok = r.status_code == 201
                    if ok:
                        trade = r.json()["tradeId"]
                        r2 = await client.post(
                            f"/trading-sessions/trades/{trade}/close", headers=headers
                        )
                        ok = r2.status_code == 200
                latencies.append(time.perf_counter() - t)
                errors += 0 if ok else 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    requests = len(latencies) * (2 if kind == "sessions" else 1)
    latencies.sort()
    return {
        "requests": requests,
        "rps": requests / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    proc, url = start_sim()
    try:
        print(
            f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        print(
            f"{'workload':<28}{'req/s':>10}{'vs 50-bot fleet':>18}{'p50 ms':>10}{'p99 ms':>10}"
            f"{'errors':>8}"
        )
        for kind, label in (
            ("signals", "GET signals/all/1h"),
            ("sessions", "session create + close"),
        ):
            r = asyncio.run(run_load(url, args.seconds, args.concurrency, kind))
            print(
                f"{label:<28}{r['rps']:>10.0f}{r['rps'] / FLEET_RPS:>17.1f}x{r['p50_ms']:>10.1f}"
                f"{r['p99_ms']:>10.1f}{r['errors']:>8.0f}"
            )
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
