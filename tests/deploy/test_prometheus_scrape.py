"""A real Prometheus scrapes `alura-bot demo` after its run; the values equal the journal's.

The demo runs as a subprocess (simulator + live daemon on an accelerated market) and, with
`--linger`, keeps only its metrics server up after the summary: the run is over, so every value is
final. Debian's `prometheus` then scrapes it every second on loopback, and the test compares what
Prometheus stored with the demo's SQLite journal (read with sqlite3, not the bot's code) and with
the simulator's own count of the requests it served (`sim-requests.json`).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = shutil.which("prometheus")
DEMO_S = 8  # a few sessions open and close at 3600x (seed 7)
LINGER_S = 60  # upper bound; the test ends the linger with SIGTERM as soon as it is done

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="Debian's `prometheus` is not installed "
    "(.ci/run installs it; `apt-get install prometheus` to run this locally)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(base: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def by_labels(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"][k] for k in labels): float(r["value"][1]) for r in result}


class Lines:
    """A subprocess's output, line by line, with a deadline (a hung demo fails, never hangs)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self._q.put(line)
            self._q.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in time:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"output ended without {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def rest(self, timeout_s: float = 5.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


def journal_facts(path: Path) -> dict[str, Any]:
    """Straight from the SQLite file: realised PnL, decisions by label, intents, open sessions."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        realized = sum(
            (
                Decimal(v)
                for (v,) in db.execute("SELECT realized_pnl FROM sessions WHERE status='closed'")
                if v is not None
            ),
            Decimal(0),
        )
        decisions = {
            (s, a, v): float(n)
            for s, a, v, n in db.execute(
                "SELECT strategy, action, verdict, COUNT(*) FROM decisions GROUP BY 1, 2, 3"
            )
        }
        confirmed = dict(
            db.execute("SELECT kind, COUNT(*) FROM intents WHERE state='confirmed' GROUP BY kind")
        )
        closed = db.execute("SELECT COUNT(*) FROM sessions WHERE status='closed'").fetchone()[0]
        still_open = db.execute("SELECT COUNT(*) FROM sessions WHERE status='open'").fetchone()[0]
    finally:
        db.close()
    return {
        "realized": realized,
        "decisions": decisions,
        "confirmed": confirmed,
        "closed": closed,
        "open": still_open,
    }


def template_of(path: str, templates: set[str]) -> str | None:
    """The endpoint template a raw path belongs to; literal segments win over `{placeholders}`
    (`/candles/history/BTC` is `/candles/history/{symbol}`, not `/candles/{symbol}/{interval}`)."""
    best: tuple[int, str] | None = None
    for t in templates:
        pattern = "".join(
            "/[^/]+" if seg.startswith("{") else "/" + re.escape(seg)
            for seg in t.strip("/").split("/")
        )
        if re.fullmatch(pattern, path):
            literal = sum(1 for seg in t.split("/") if seg and not seg.startswith("{"))
            if best is None or literal > best[0]:
                best = (literal, t)
    return best[1] if best else None


def test_prometheus_scrapes_the_finished_demo_and_agrees_with_its_journal(
    tmp_path: Path,
) -> None:
    import json

    assert PROMETHEUS is not None
    workdir = tmp_path / "demo"
    started = time.monotonic()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "demo",
            "--duration",
            str(DEMO_S),
            "--no-table",
            "--workdir",
            str(workdir),
            "--metrics-port",
            "0",
            "--linger",
            str(LINGER_S),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    prom: subprocess.Popen[bytes] | None = None
    out = Lines(demo)
    try:
        journal_line = out.until(r"journal\s*│\s*(\S+)", timeout_s=DEMO_S + 60)
        serving = out.until(r"serving the final metrics at (http://127\.0\.0\.1:(\d+))/metrics", 10)
        summary_at = time.time()  # everything scraped from now on is the finished run
        journal_path = Path(journal_line.group(1))
        assert journal_path == workdir / "journal.sqlite"
        target = f"127.0.0.1:{serving.group(2)}"

        prom_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: alura-bot\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        prom_log = (tmp_path / "prometheus.log").open("wb")
        prom = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=prom_log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{prom_port}"
        deadline = time.monotonic() + 30
        scraped_at = 0.0
        while time.monotonic() < deadline and prom.poll() is None:
            try:
                up = query(base, 'timestamp(up{job="alura-bot"} == 1)')
            except (httpx.HTTPError, ValueError):
                up = []
            if up and float(up[0]["value"][1]) > summary_at:
                scraped_at = float(up[0]["value"][1])
                break
            time.sleep(0.25)  # polling an external process (Prometheus), with a deadline
        assert scraped_at, (
            "Prometheus never scraped the demo after its summary:\n"
            + (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
        )

        facts = journal_facts(journal_path)
        assert facts["closed"] > 0, "the demo closed no session: nothing to compare"

        # Realised PnL: the gauge is the journal's sum of closed sessions, to the cent and beyond.
        pnl = query(base, "alura_bot_realized_pnl_usd")
        assert len(pnl) == 1
        assert float(pnl[0]["value"][1]) == pytest.approx(float(facts["realized"]), abs=1e-9)
        assert float(facts["realized"]) != 0.0

        # Decisions by strategy, action, verdict: exactly the journal's decisions table.
        decisions = by_labels(
            query(base, "alura_bot_decisions_total"), "strategy", "action", "verdict"
        )
        assert decisions == facts["decisions"]

        # Open sessions by asset sum to the journal's open sessions (no series: none ever seen).
        open_sessions = query(base, "sum(alura_bot_open_sessions) or vector(0)")
        assert float(open_sessions[0]["value"][1]) == facts["open"]

        # API requests: what the bot counted equals what the simulator served, per endpoint
        # template, method and status code; nothing went unanswered.
        counted = by_labels(
            query(base, "alura_bot_api_requests_total"), "endpoint", "method", "code"
        )
        assert counted, "no alura_bot_api_requests_total series"
        assert all(code != "none" for _, _, code in counted)
        served_log = json.loads((workdir / "sim-requests.json").read_text())
        templates = {endpoint for endpoint, _, _ in counted}
        served: Counter[tuple[str, str, str]] = Counter()
        for row in served_log["requests"]:
            template = template_of(row["path"], templates)
            assert template is not None, f"served but not counted by the bot: {row}"
            served[(template, row["method"], str(row["status"]))] += row["count"]
        assert sum(served.values()) == served_log["total"] > 0
        assert counted == {k: float(v) for k, v in served.items()}

        # ...and the requests that move money match the journal's confirmed intents.
        creates = sum(
            n
            for (endpoint, method, code), n in counted.items()
            if (endpoint, method) == ("/trading-sessions", "POST") and code.startswith("2")
        )
        closes = sum(
            n
            for (endpoint, method, code), n in counted.items()
            if method == "POST" and endpoint.endswith("/close") and code.startswith("2")
        )
        assert creates == facts["confirmed"].get("open_quick", 0) > 0
        assert closes == facts["confirmed"].get("close_session", 0) > 0

        # The linger ends on SIGTERM, promptly and cleanly.
        stop_sent = time.monotonic()
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=10) == 0
        assert time.monotonic() - stop_sent < 5
        assert "Traceback" not in out.rest()
        assert time.monotonic() - started < 45
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        if demo.poll() is None:
            demo.kill()
            demo.wait()
