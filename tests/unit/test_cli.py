"""The command line as a user runs it: a real subprocess of the installed entry point."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from bot import __version__


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALURA_BOT_")}
    full_env.update({"XDG_CONFIG_HOME": str(cwd / "xdg"), "COLUMNS": "120"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version(tmp_path: Path) -> None:
    out = run("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"alura-bot {__version__}"


def test_help_lists_commands(tmp_path: Path) -> None:
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "doctor" in out.stdout and "auth" in out.stdout and "paper" in out.stdout.lower()


def doctor_rows(stdout: str) -> dict[str, str]:
    """The doctor's table as {check: first line of its row}."""
    names = ("config", "private key", "reachability", "clock skew", "auth round trip")
    rows: dict[str, str] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] in names:
            rows[cells[0]] = " | ".join(cells[1:])
    return rows


def test_doctor_fails_fast_on_unreachable_server(tmp_path: Path, key_file: Path) -> None:
    """Fast because nothing after a failed reachability check goes on the wire: with a valid
    key the login would run next, and it is skipped, as is the clock check."""
    out = run(
        "doctor", "--base-url", "http://127.0.0.1:9", "--key-file", str(key_file), cwd=tmp_path
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    rows = doctor_rows(out.stdout)
    assert rows["private key"].startswith("ok")
    assert rows["reachability"].startswith("fail") and "could not connect" in rows["reachability"]
    assert rows["clock skew"] == "skip | server not reachable"
    assert rows["auth round trip"] == "skip | server not reachable"


class DroppingServer:
    """A TCP listener that accepts every connection and resets it at once, counting them: a
    retryable transport failure for a read, so each retry would show as one more connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: the request gets no answer

    def __enter__(self) -> DroppingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_doctor_does_not_retry_the_reachability_check(tmp_path: Path, key_file: Path) -> None:
    """The configured 4 attempts (with backoff between them) are for the daemon's reads; the
    doctor tries the server once and reports, and sends nothing else after the failure."""
    (tmp_path / "alura-bot.toml").write_text("[http]\nretry_attempts = 4\n")
    with DroppingServer() as server:
        out = run(
            "doctor",
            "--base-url",
            f"http://127.0.0.1:{server.port}",
            "--key-file",
            str(key_file),
            cwd=tmp_path,
        )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    rows = doctor_rows(out.stdout)
    assert rows["reachability"].startswith("fail")
    assert rows["auth round trip"] == "skip | server not reachable"
    assert server.connections == 1


def test_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "alura-bot.toml").write_text('mode = "yolo"\nmetrics_port = -1\n')
    out = run("doctor", cwd=tmp_path)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.startswith("config error:")]
    assert len(lines) == 2
    assert "Traceback" not in out.stderr


def test_auth_without_key_exits_2(tmp_path: Path) -> None:
    out = run("auth", "--base-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert out.returncode == 2 and "no private key found" in out.stderr


def test_open_key_file_refused_with_fix(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("11" * 32)
    key.chmod(0o644)
    out = run("auth", "--key-file", str(key), cwd=tmp_path)
    assert out.returncode == 2 and f"chmod 600 {key}" in out.stderr
