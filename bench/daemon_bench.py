"""Daemon tick latency, steady-state RSS and CPU at 1 s ticks against the local simulator.

The simulator runs as `alura-bot sim --speed 60` (one market minute per second); the daemon runs
in its own process on a market clock mirrored from the simulator's, trading 6 assets with 1m
strategies, so it ticks once a second. This script samples the daemon's RSS and CPU time from
/proc and reads its tick durations at the end. Targets (issue 5): p99 tick < 50 ms, RSS < 120 MB,
CPU < 1 %.

    python bench/daemon_bench.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

DAEMON = r"""
import asyncio, json, secrets, sys, time
from pathlib import Path
import httpx
from pydantic import SecretStr
from bot import aio
from bot.engine.daemon import Daemon
from bot.settings import Settings
from bot.sim.clock import SimClock

url, journal, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
sim_now = httpx.get(url + "/__sim/clock").json()["clockMs"]
clock = SimClock.accelerated(sim_now, 60.0)
settings = Settings(base_url=url, mode="live", journal_path=journal, metrics_port=0,
    strategies=[{"name": "signal_follower", "params": {"interval": "1m"}},
                {"name": "ema_cross", "params": {"interval": "1m", "fast": 5, "slow": 20}},
                {"name": "position_guard", "params": {"max_age_h": 1}}],
    risk={"cooldown_s": 300, "max_open_sessions": 4},
    http={"rate_limit_per_s": 1000, "rate_limit_burst": 100},
    engine={"lookback_candles": 300, "tick_offset_s": 0.5, "reconcile_every_s": 600})
durations = []

async def main():
    daemon = Daemon(settings, key=SecretStr("0x" + secrets.token_hex(32)), live=True,
                    clock=clock, speed=60.0, freeze_heap=True,  # as `alura-bot run` does
                    on_tick=lambda r: durations.append(r.duration_s))
    await daemon.start()
    print("started", flush=True)
    await asyncio.sleep(seconds)
    opened = daemon.parts.journal.counts()["sessions"]
    await daemon.stop()
    Path(out).write_text(json.dumps({"durations": durations, "opened": opened}))

aio.run(main())  # the loop `alura-bot run` uses
"""


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds user+system) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="daemon-bench-"))
    sim = subprocess.Popen(
        [sys.executable, "-m", "bot", "sim", "--port", "0", "--speed", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert sim.stdout is not None
    url = ""
    for line in sim.stdout:
        found = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", line)
        if found:
            url = found.group(1)
            break
    out = work / "result.json"
    daemon = subprocess.Popen(
        [sys.executable, "-c", DAEMON, url, str(work / "j.sqlite"), str(seconds), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        daemon.stdout.readline()
        warm = min(60.0, seconds / 5)
        time.sleep(warm)
        rss0, cpu0 = proc_stats(daemon.pid)
        t0 = time.monotonic()
        rss_samples = [rss0]
        while daemon.poll() is None and time.monotonic() - t0 < seconds - warm - 5:
            time.sleep(5)
            rss, cpu = proc_stats(daemon.pid)
            rss_samples.append(rss)
        cpu_pct = (cpu - cpu0) / (time.monotonic() - t0) * 100
        daemon.wait(timeout=120)
    finally:
        sim.kill()
        if daemon.poll() is None:
            daemon.kill()
    data = json.loads(out.read_text())
    d = sorted(data["durations"])
    p50 = statistics.median(d) * 1000
    p99 = d[max(0, int(len(d) * 0.99) - 1)] * 1000
    rss_steady = statistics.median(rss_samples[len(rss_samples) // 2 :])
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"{args.minutes:g} min at 1 s ticks, 6 assets, {len(d)} ticks, "
        f"{data['opened']} sessions opened"
    )
    print(f"{'figure':<28}{'measured':>12}{'target':>12}")
    print(f"{'tick p50':<28}{p50:>10.1f}ms{'':>12}")
    print(f"{'tick p99':<28}{p99:>10.1f}ms{'< 50 ms':>12}")
    print(f"{'RSS steady (median, 2nd half)':<28}{rss_steady:>10.1f}MB{'< 120 MB':>12}")
    print(f"{'RSS max':<28}{max(rss_samples):>10.1f}MB")
    print(f"{'CPU':<28}{cpu_pct:>11.2f}%{'< 1 %':>12}")


if __name__ == "__main__":
    main()
