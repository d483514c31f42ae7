"""The daemon and the demo as processes: notify socket, SIGTERM, exit codes, the demo summary."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "demo",
            "--duration",
            "6",
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
    assert "demo summary" in out.stdout and "realised PnL" in out.stdout
    opened = re.search(r"sessions opened / closed / still open\s*│\s*(\d+) / (\d+)", out.stdout)
    assert opened and int(opened.group(1)) > 0
    assert (tmp_path / "journal.sqlite").exists()
    assert "Traceback" not in out.stderr


def test_run_notifies_systemd_and_exits_cleanly_on_sigterm(
    sim_process: str, tmp_path: Path
) -> None:
    """Started the way the unit starts it: a credentials directory and a notify socket."""
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "private-key").write_text("0x" + "42" * 32)
    config = tmp_path / "bot.toml"
    config.write_text(
        f'base_url = "{sim_process}"\njournal_path = "{tmp_path / "journal.sqlite"}"\n'
        "metrics_port = 0\n"
        "[engine]\ntick_offset_s = 0.0\n"
        '[[strategies]]\nname = "signal_follower"\nparams = {interval = "1m"}\n'
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
        while not ({"READY=1", "WATCHDOG=1"} <= set(seen)):
            seen += sock.recv(4096).decode().splitlines()
        assert any(line.startswith("STATUS=") for line in seen)
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
