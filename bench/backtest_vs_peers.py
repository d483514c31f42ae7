"""`alura-bot backtest` against vectorbt, backtesting.py, freqtrade and a plain numba loop.

One invocation runs every tool on the same candles and the canonical workload (long-only
SMA(10)/SMA(30) cross on the close, entry and exit at the next open, TP +2 %, SL -1 % intrabar
with the stop first, 0.045 % fee per side, one position per asset, 100 USDC per trade):

- W1: ``BTC-USDT_binance-futures_1h.csv`` (32k candles)
- W2: the six ``*-USDC_hyperliquid_5m.csv`` files (231k candles)

Each tool lives in its own virtualenv under the cache directory (created on first use with pip;
``--no-setup`` refuses to install; alura-bot is this checkout's wheel, reinstalled when its
sources change), runs as a separate process, and prints one RESULT line with
its trades, net PnL and backtest-only time. Whole processes are timed from outside, several runs
each, medians quoted; peak memory is the child's max RSS (``wait4``). freqtrade runs offline: its
runner replaces ccxt's market download with a static market list.

    python bench/backtest_vs_peers.py [--runs 5] [--workloads W1,W2] [--peers ...] [--markdown]
    python bench/backtest_vs_peers.py --setup-only   # create the virtualenvs ahead of time
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS_DIR = HERE / "peers"
DEFAULT_DATA = Path(
    os.environ.get("ALURA_SHARED_CANDLES")
    or Path(os.environ.get("ALURA_SHARED") or REPO.parent / "shared") / "data" / "candles"
)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alura-bot-bench"

PACKAGES = {
    "vectorbt": ["vectorbt"],
    "backtesting": ["backtesting"],
    "freqtrade": ["freqtrade"],
}
VENVS = {"vectorbt": "vectorbt", "backtesting.py": "backtesting", "freqtrade": "freqtrade"}
"""Tool name -> its virtualenv (and PACKAGES key); the numba loop runs in this interpreter."""
CONVENTIONS = {
    "alura-bot": "a position still open when the data ends closes at the last close and counts",
    "numba-loop": "same conventions as alura-bot (written from the workload's description)",
    "vectorbt": "stops via sl_stop/tp_stop from the fill price; see RESULTS.md for counts",
    "backtesting.py": "whole units of 1e-6 coin; finalize_trades=True closes the last trade",
    "freqtrade": "minimal_roi is a profit ratio net of fees; offline, static market list",
}


def workload_files(data: Path, name: str) -> list[Path]:
    if name == "W1":
        return [data / "BTC-USDT_binance-futures_1h.csv"]
    if name == "W2":
        return sorted(data.glob("*-USDC_hyperliquid_5m.csv"))
    raise SystemExit(f"unknown workload {name!r} (W1 or W2)")


def ensure_venv(cache: Path, peer: str, setup: bool) -> Path:
    """The peer's interpreter, installing it into <cache>/venvs/<peer> on first use."""
    venv = cache / "venvs" / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    if not setup:
        raise SystemExit(f"{peer} is not installed in {venv}; run without --no-setup")
    print(f"setting up {peer} in {venv} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *PACKAGES[peer]],
        check=True,
    )
    marker.write_text(" ".join(PACKAGES[peer]) + "\n")
    return python


def source_fingerprint() -> str:
    """A hash of what the installed wheel is built from, so an edit reinstalls it."""
    import hashlib

    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "bot", "strategies", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    digest = hashlib.sha256()
    for name in sorted(listed):
        path = REPO / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def ensure_alura_venv(cache: Path, setup: bool) -> Path:
    """alura-bot installed from a wheel of this checkout into its own virtualenv, as a user
    installs it and as every peer is installed (no editable-install import hook, no dev tools)."""
    venv = cache / "venvs" / "alura-bot"
    script = venv / "bin" / "alura-bot"
    marker = venv / ".installed"
    want = source_fingerprint()
    if marker.exists() and marker.read_text().strip() == want:
        return script
    if not setup:
        raise SystemExit(f"alura-bot is not installed (current) in {venv}; run without --no-setup")
    print(f"installing this checkout into {venv} ...", file=sys.stderr)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, str(REPO)], check=True)
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(REPO)], check=True)
    marker.write_text(want + "\n")
    return script


def alura_command(script: Path, files: list[Path], as_json: bool) -> list[str]:
    cmd = [str(script), "backtest", "-s", "ema_cross"]
    cmd += ["-p", "fast=10", "-p", "slow=30", "-p", "kind=sma"]
    for f in files:
        cmd += ["--data", str(f)]
    cmd += ["--no-reentry", "--cooldown", "0", "--max-sessions", "6", "--budget", "10000"]
    cmd += ["--daily-loss-limit", "1000000000", "--max-total-budget", "1000000000"]
    return [*cmd, "--json"] if as_json else cmd


@dataclass
class Measure:
    tool: str
    workload: str
    walls: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    result: dict[str, object] = field(default_factory=dict)
    error: str = ""
    load: float = field(default_factory=lambda: os.getloadavg()[0])
    """1-minute load average as this tool's runs began: other work on a shared machine."""

    @property
    def wall(self) -> float:
        return statistics.median(self.walls) if self.walls else float("nan")

    @property
    def rss(self) -> float:
        return max(self.rss_mb) if self.rss_mb else float("nan")


def timed_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one whole process; wait4 gives this child's own
    max RSS (Popen would reap it without)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=PEERS_DIR
    )
    assert proc.stdout is not None and proc.stderr is not None
    # read both pipes fully, then reap with wait4 to get this child's own rusage
    import selectors

    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out_chunks)
    sel.register(proc.stderr, selectors.EVENT_READ, err_chunks)
    open_pipes = 2
    while open_pipes:
        for key, _ in sel.select():
            data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
            if not data:
                sel.unregister(key.fileobj)
                open_pipes -= 1
            else:
                key.data.append(data)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    out = b"".join(out_chunks).decode()
    err = b"".join(err_chunks).decode()
    if proc.returncode:
        raise RuntimeError(f"exit {proc.returncode}: {err.strip()[-1500:]}")
    return wall, usage.ru_maxrss / 1024, out


def parse_result(out: str) -> dict[str, object]:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"no RESULT line in: {out[-500:]}")


def run_tool(
    tool: str, workload: str, files: list[Path], runs: int, cache: Path, setup: bool
) -> Measure:
    m = Measure(tool, workload)
    env = dict(os.environ)
    env.pop("ALURA_BOT_KERNEL", None)
    try:
        if tool == "alura-bot":
            script = ensure_alura_venv(cache, setup)
            _, _, out = timed_rss(alura_command(script, files, True), env)  # builds the loop once
            summary = json.loads(out)
            version = subprocess.run(
                [str(script), "--version"], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
            m.result = {
                "version": version,
                "trades": summary["trade"]["trades"],
                "pnl": summary["trade"]["net_pnl"],
                "backtest_s": summary["timings"]["backtest_s"],
                "kernel_s": summary["timings"]["simulate_s"],
            }
            for _ in range(runs):
                wall, rss, _ = timed_rss(alura_command(script, files, False), env)
                m.walls.append(wall)
                m.rss_mb.append(rss)
            return m
        if tool == "numba-loop":
            cmd = [sys.executable, str(PEERS_DIR / "numba_loop_run.py"), *map(str, files)]
        elif tool == "vectorbt":
            python = ensure_venv(cache, "vectorbt", setup)
            cmd = [str(python), str(PEERS_DIR / "vectorbt_run.py"), *map(str, files)]
        elif tool == "backtesting.py":
            python = ensure_venv(cache, "backtesting", setup)
            cmd = [str(python), str(PEERS_DIR / "backtesting_run.py"), *map(str, files)]
        elif tool == "freqtrade":
            python = ensure_venv(cache, "freqtrade", setup)
            work = cache / "freqtrade" / workload
            cmd = [str(python), str(PEERS_DIR / "freqtrade_run.py"), str(work), *map(str, files)]
            timed_rss(cmd, env)  # first run converts the candles into freqtrade's data dir
        else:
            raise SystemExit(f"unknown tool {tool!r}")
        for _ in range(runs):
            wall, rss, out = timed_rss(cmd, env)
            m.walls.append(wall)
            m.rss_mb.append(rss)
            m.result = parse_result(out)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        m.error = str(exc)
    return m


def fmt(x: object, digits: int = 2) -> str:
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def table(measures: list[Measure], markdown: bool) -> str:
    head = [
        "workload",
        "tool",
        "version",
        "trades",
        "net PnL (USDC)",
        "backtest-only s",
        "whole process s (median)",
        "vs alura-bot",
        "peak MB",
        "load",
    ]
    rows = []
    base = {m.workload: m.wall for m in measures if m.tool == "alura-bot" and m.walls}
    for m in measures:
        if m.error:
            rows.append([m.workload, m.tool, "", "", "", "", f"failed: {m.error[:80]}", "", "", ""])
            continue
        r = m.result
        bt = r.get("backtest_s")
        extra = f" (work {r['work_ms']:.1f} ms)" if "work_ms" in r else ""
        if "kernel_s" in r:
            extra = f" (loop {1000 * float(r['kernel_s']):.1f} ms)"  # type: ignore[arg-type]
        ratio = m.wall / base[m.workload] if m.workload in base else float("nan")
        rows.append(
            [
                m.workload,
                m.tool,
                str(r.get("version", "")),
                fmt(r.get("trades")),
                fmt(float(r.get("pnl", float("nan"))), 4),  # type: ignore[arg-type]
                (fmt(float(bt), 4) if bt is not None else "") + extra,  # type: ignore[arg-type]
                fmt(m.wall),
                f"{ratio:.1f}x",
                fmt(m.rss, 0),
                f"{m.load:.2f}",
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool and workload")
    ap.add_argument("--workloads", default="W1,W2")
    ap.add_argument("--peers", default="alura-bot,numba-loop,vectorbt,backtesting.py,freqtrade")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--no-setup", action="store_true", help="never create virtualenvs")
    ap.add_argument(
        "--setup-only",
        action="store_true",
        help="create (or refresh) the virtualenvs of the chosen tools, then exit: the first "
        "setup takes minutes, worth doing ahead of a measurement",
    )
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--json", type=Path, help="also save the measurements here")
    args = ap.parse_args()
    if args.setup_only:
        for tool in args.peers.split(","):
            if tool == "alura-bot":
                print(ensure_alura_venv(args.cache, True))
            elif tool in VENVS:
                print(ensure_venv(args.cache, VENVS[tool], True))
        return
    if not args.data.is_dir():
        raise SystemExit(f"candle data not found at {args.data}")
    measures = []
    for workload in args.workloads.split(","):
        files = workload_files(args.data, workload)
        for tool in args.peers.split(","):
            print(f"{workload}: {tool} ...", file=sys.stderr, flush=True)
            measures.append(
                run_tool(tool, workload, files, args.runs, args.cache, not args.no_setup)
            )
    load = os.getloadavg()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load[0]:.2f}, {args.runs} runs each"
    )
    print(table(measures, args.markdown))
    print()
    for tool, note in CONVENTIONS.items():
        print(f"- {tool}: {note}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "tool": m.tool,
                        "workload": m.workload,
                        "walls": m.walls,
                        "rss_mb": m.rss_mb,
                        "result": m.result,
                        "error": m.error,
                        "load": m.load,
                    }
                    for m in measures
                ],
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
