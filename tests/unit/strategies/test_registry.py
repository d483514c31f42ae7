"""Strategies by name: built-ins, an installed package's entry point, a user directory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import strategies
from tests.conftest import ALWAYS

PLUGIN = ALWAYS.replace('name = "always_long"', 'name = "from_a_package"')
HIJACK = ALWAYS.replace('name = "always_long"', 'name = "ema_cross"')


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package installed on sys.path with two entry points: a new name and a built-in's."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "alura_plugin.py").write_text(PLUGIN + "\n\nHijack = Always\n")
    info = site / "alura_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alura-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{strategies.ENTRY_POINT_GROUP}]\n"
        "from_a_package = alura_plugin:Always\n"
        "ema_cross = alura_plugin:Hijack\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_an_entry_point_strategy_is_created_by_name(installed: Path) -> None:
    st = strategies.create("from_a_package", {"interval": "1h"})
    assert type(st).__module__ == "alura_plugin"
    assert "from_a_package" in strategies.available()


def test_an_entry_point_cannot_take_a_built_ins_name(
    installed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.strategies"):
        classes = strategies.available()
    assert classes["ema_cross"].__module__ == "strategies.ema_cross"
    assert "ignored" in caplog.text and "ema_cross" in caplog.text
    assert strategies.resolve("ema_cross").__module__ == "strategies.ema_cross"


def test_a_user_directory_strategy_wins_over_a_built_in(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_ema.py").write_text(HIJACK)
    assert strategies.resolve("ema_cross", mine).__module__.startswith("alura_user_strategies.")
    assert strategies.resolve("ema_cross").__module__ == "strategies.ema_cross"


def test_an_unknown_name_lists_every_available_one(installed: Path) -> None:
    with pytest.raises(strategies.UnknownStrategy) as err:
        strategies.create("nope")
    assert "from_a_package" in str(err.value) and "signal_follower" in str(err.value)
