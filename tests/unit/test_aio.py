"""The event loop of the long-running commands (bot.aio)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import aio
from tests.unit.test_cli import run as run_cli


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")
    assert aio.run(_loop_module(), choice="auto").startswith("uvloop")


def test_asyncio_choice_runs_on_the_standard_loop() -> None:
    assert aio.run(_loop_module(), choice="asyncio").startswith("asyncio")


def test_environment_picks_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALURA_BOT_LOOP", "asyncio")
    assert aio.loop_factory()[0] == "asyncio"


def test_unknown_loop_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"auto, uvloop, asyncio.*'libuv'"):
        aio.loop_factory("libuv")


def test_run_returns_the_coroutines_result() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert aio.run(answer()) == 42


def test_cli_run_reports_a_bad_loop_choice_as_a_config_error(tmp_path: Path) -> None:
    out = run_cli(
        "run",
        "--base-url",
        "http://127.0.0.1:9",
        cwd=tmp_path,
        env={"ALURA_BOT_LOOP": "tokio", "ALURA_BOT_JOURNAL_PATH": str(tmp_path / "j.sqlite")},
    )
    assert out.returncode == 2, out.stderr
    assert "config error: ALURA_BOT_LOOP must be one of auto, uvloop, asyncio" in out.stderr
    assert "Traceback" not in out.stderr
