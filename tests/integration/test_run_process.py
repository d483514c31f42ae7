"""The daemon and the demo as processes: notify socket, SIGTERM, exit codes, the demo summary."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sim_process() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sim", "--port", "0", "--speed", "3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", line)
        if found:
            yield found.group(1)
            break
    proc.kill()
    proc.wait()


def test_demo_runs_to_completion(tmp_path: Path) -> None:
    """The README's first command: sessions open and close, and the summary is the journal's."""
    from bot.journal import Journal

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "demo",
            "--duration",
            "8",
            "--no-table",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "demo summary" in out.stdout
    counts = re.search(r"sessions opened / closed / still open\s*│\s*(\d+) / (\d+)", out.stdout)
    pnl = re.search(r"realised PnL\s*│\s*([-+][\d.]+) USDC", out.stdout)
    assert counts and pnl, out.stdout
    assert int(counts.group(1)) > 0 and int(counts.group(2)) > 0, out.stdout
    journal = Journal.open(tmp_path / "journal.sqlite")
    assert float(pnl.group(1)) == pytest.approx(float(journal.realized_pnl_total()), abs=5e-5)
    assert len([s for s in journal.sessions() if s.status == "closed"]) == int(counts.group(2))
    journal.close()
    assert "Traceback" not in out.stderr


def test_demo_refuses_a_metrics_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                *(sys.executable, "-m", "bot", "demo", "--duration", "1", "--no-table"),
                *("--workdir", str(tmp_path), "--metrics-port", str(port), "--linger", "30"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert f"cannot serve metrics on 127.0.0.1:{port}: the port is already in use" in line
    assert "--metrics-port" in line and "metrics_port" in line
    assert not (tmp_path / "journal.sqlite").exists()  # refused before anything traded


def test_run_refuses_a_metrics_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "bot.toml"
        config.write_text(
            'base_url = "http://127.0.0.1:9"\n'
            f'journal_path = "{tmp_path / "journal.sqlite"}"\nmetrics_port = {port}\n'
        )
        out = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(tmp_path),
        )
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot serve metrics on 127.0.0.1:{port}: ")
    assert "already in use" in line and "metrics_port" in line


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALURA_BOT_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env.pop("NOTIFY_SOCKET", None)
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **extra}


def credentials(tmp_path: Path) -> Path:
    """A systemd-style credentials directory holding a throwaway key (never funded)."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "private-key").write_text("0x" + "42" * 32)
    return creds


@pytest.mark.parametrize("venue", ["refusing", "silent"])
def test_sigterm_while_the_venue_is_unreachable_exits_0_at_once(tmp_path: Path, venue: str) -> None:
    """Live mode, the start-up reconcile cannot reach the venue: a port that refuses
    connections, or one that accepts them and never answers (the read timeout and the retries
    would hold the process for a minute). SIGTERM ends it within the 10 s budget, exit 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if venue == "silent":
            sock.listen(64)  # the kernel completes handshakes; nothing ever reads or answers
        port = sock.getsockname()[1]
        creds = credentials(tmp_path)
        config = tmp_path / "bot.toml"
        config.write_text(
            f'mode = "live"\nbase_url = "http://127.0.0.1:{port}"\n'
            f'journal_path = "{tmp_path / "journal.sqlite"}"\nmetrics_port = 0\n'
            'log_format = "json"\n'
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(config), "--live"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path, CREDENTIALS_DIRECTORY=str(creds), PYTHONUNBUFFERED="1"),
        )
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:  # the start-up reconcile is under way once this is logged
                seen.append(line)
                if "starting alura-bot" in line:
                    break
            assert seen and "starting alura-bot" in seen[-1], "".join(seen)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    rest = proc.stderr.read() if proc.stderr else ""
    output = "".join(seen) + rest + (proc.stdout.read() if proc.stdout else "")
    assert code == 0, output[-3000:]
    assert took < 10, f"took {took:.1f} s"
    assert "Traceback" not in output and '"exc"' not in output
    assert "42" * 32 not in output


def test_run_notifies_systemd_and_exits_cleanly_on_sigterm(
    sim_process: str, tmp_path: Path
) -> None:
    """Started the way the unit starts it: a credentials directory and a notify socket."""
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    creds = credentials(tmp_path)
    config = tmp_path / "bot.toml"
    config.write_text(
        f'base_url = "{sim_process}"\njournal_path = "{tmp_path / "journal.sqlite"}"\n'
        "metrics_port = 0\n"
        '[engine]\ntick_offset_s = 0.0\nclock = "venue"\n'  # the sim's hour lasts a second
        '[[strategies]]\nname = "signal_follower"\nparams = {interval = "1h"}\n'
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "30000000",
        "CREDENTIALS_DIRECTORY": str(creds),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        seen: list[str] = []
        while not (
            {"READY=1", "WATCHDOG=1"} <= set(seen)
            and any(line.startswith("STATUS=last tick") for line in seen)
        ):
            seen += sock.recv(4096).decode().splitlines()
        assert "STATUS=paper mode; reconciled" in seen
        tick = next(line for line in seen if line.startswith("STATUS=last tick"))
        assert re.fullmatch(
            r"STATUS=last tick \d\d:\d\d:\d\d \(1h\); opened \d+, closed \d+, "
            r"realised -?[\d.]+ USDC",
            tick,
        ), tick
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        assert code == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    output = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in output
    assert "42" * 32 not in output


def test_ready_waits_for_the_venue_and_follows_once_it_answers(tmp_path: Path) -> None:
    """Safety: no READY=1 (and so no tick) before the start-up reconcile has succeeded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now; nothing listens until the venue starts below
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(60)
    config = tmp_path / "bot.toml"
    config.write_text(
        f'mode = "live"\nbase_url = "http://127.0.0.1:{port}"\n'
        f'journal_path = "{tmp_path / "journal.sqlite"}"\nmetrics_port = 0\n'
    )
    env = _env(
        tmp_path, NOTIFY_SOCKET=str(notify_path), CREDENTIALS_DIRECTORY=str(credentials(tmp_path))
    )
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config), "--live"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    venue = None
    try:
        first = sock.recv(4096).decode().splitlines()
        assert first == ["STATUS=waiting for the venue: TransportError"], first
        venue = subprocess.Popen(
            [sys.executable, "-m", "bot", "sim", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seen: list[str] = []
        while "READY=1" not in seen:
            seen += sock.recv(4096).decode().splitlines()
        assert "STATUS=live mode; reconciled" in seen
        assert set(seen) - {"READY=1", "STATUS=live mode; reconciled"} <= {
            "STATUS=waiting for the venue: TransportError"
        }
    finally:
        for proc in (bot, venue):
            if proc is not None:
                proc.kill()
                proc.wait()
        sock.close()


def test_live_flag_without_live_config_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--live", "--base-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert out.returncode == 2
    assert 'mode = "paper"' in out.stderr


def test_run_freezes_its_start_up_heap_for_the_garbage_collector(
    sim_process: str, tmp_path: Path
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text(
        f'base_url = "{sim_process}"\njournal_path = "{tmp_path / "journal.sqlite"}"\n'
        'metrics_port = 0\n[[strategies]]\nname = "signal_follower"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    give_up = threading.Timer(30, proc.kill)  # a daemon that never logs it must not hang the run
    give_up.start()
    try:
        assert proc.stdout is not None
        frozen = None
        for line in proc.stdout:  # the daemon's log, until start-up is done
            if found := re.search(r"start-up heap frozen: (\d+) objects", line):
                frozen = int(found.group(1))
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        give_up.cancel()
        if proc.poll() is None:
            proc.kill()
    assert frozen is not None and frozen > 10_000
