"""Safety rule 1: live trading needs mode = "live" in the config and --live on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.daemon import LiveModeRefused, effective_mode
from bot.settings import Mode, Settings


def settings(mode: Mode) -> Settings:
    return Settings(mode=mode)


def test_live_config_and_live_flag_trade_live(clean_env: Path) -> None:
    assert effective_mode(settings(Mode.LIVE), live_flag=True) == "live"


def test_live_config_without_the_flag_runs_on_paper(clean_env: Path) -> None:
    assert effective_mode(settings(Mode.LIVE), live_flag=False) == "paper"


def test_paper_config_without_the_flag_runs_on_paper(clean_env: Path) -> None:
    assert effective_mode(settings(Mode.PAPER), live_flag=False) == "paper"


def test_the_flag_with_a_paper_config_is_refused_not_downgraded(clean_env: Path) -> None:
    with pytest.raises(LiveModeRefused, match='mode = "paper"'):
        effective_mode(settings(Mode.PAPER), live_flag=True)
