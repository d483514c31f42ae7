"""The command line as a user runs it: a real subprocess of the installed entry point."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_doctor_fails_fast_on_unreachable_server(tmp_path: Path) -> None:
    out = run("doctor", "--base-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert out.returncode == 1
    assert "reachability" in out.stdout and "could not connect" in out.stdout
    assert "Traceback" not in out.stderr


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
