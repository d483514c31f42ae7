"""`alura-bot strategies`, as a user runs it to fill in a [[strategies]] table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ALWAYS


def strategies(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "strategies", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_lists_every_built_in_with_its_own_params_and_defaults() -> None:
    out = strategies("--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) >= {"signal_follower", "ema_cross", "rsi_reversion", "position_guard"}
    assert rows["ema_cross"]["params"] == {"fast": 12, "slow": 26, "kind": "ema"}
    assert rows["position_guard"]["kind"] == "position manager"
    assert rows["ema_cross"]["summary"].startswith("trend following")


def test_the_table_names_the_common_params() -> None:
    out = strategies()
    assert out.returncode == 0, out.stderr
    assert "[[strategies]]" in out.stdout and "rsi_reversion" in out.stdout
    assert "Every candle strategy also takes interval" in out.stdout


def test_a_strategies_directory_is_listed_too(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(ALWAYS)
    rows = json.loads(strategies("--dir", str(tmp_path), "--json").stdout)
    mine = next(r for r in rows if r["name"] == "always_long")
    assert mine["params"] == {"exit_every": 0} and mine["kind"] == "candles"


def test_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = strategies("--dir", str(tmp_path / "nope"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--dir" in out.stderr
