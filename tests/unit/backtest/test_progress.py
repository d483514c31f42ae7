"""The lazy progress bar: off for runs under a second, and moving within a long step."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from bot.backtest.progress import LazyProgress
from bot.cli_backtest import load_data
from bot.market.data import synthetic_market, write_csv


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bar(total: int, clock: Clock, enabled: bool = True) -> LazyProgress:
    quiet = Console(file=io.StringIO(), force_terminal=False)
    return LazyProgress(total, enabled, clock=clock, console=quiet)


def test_a_run_under_a_second_shows_no_bar() -> None:
    clock = Clock()
    p = bar(3, clock)
    for i, what in enumerate(["loading", "signals", "simulating"]):
        clock.now += 0.3
        p.step(what)
        p.within(what, 1, 2)
        assert not p.shown, i
    p.close()
    assert not p.shown


def test_the_bar_appears_within_a_long_step_not_only_at_the_next() -> None:
    clock = Clock()
    p = bar(2, clock)
    p.step("loading")
    p.step("writing the report")
    p.within("plot: Equity", 0, 4)
    assert not p.shown
    clock.now += 1.2  # the first plot took long
    p.within("plot: Drawdown", 1, 4)
    assert p.shown and p.description == "plot: Drawdown"
    assert p.completed == pytest.approx(1.25)  # one step done, a quarter of the second
    p.within("report.html", 3, 4)
    assert p.completed == pytest.approx(1.75)
    p.close()
    assert not p.shown


def test_a_known_long_step_shows_at_once_and_counts_in_the_total() -> None:
    clock = Clock()
    p = bar(2, clock)
    p.step("loading")
    p.add(1)
    p.step("compiling the backtest loop (first run only)", force=True)
    assert p.shown and p.total == 3 and p.completed == 1.0
    p.close()


def test_json_output_never_shows_a_bar() -> None:
    clock = Clock()
    p = bar(1, clock, enabled=False)
    clock.now += 5
    p.step("simulating", force=True)
    assert not p.shown


class Heard(LazyProgress):
    """Records every report the bar hears."""

    def __init__(self) -> None:
        super().__init__(1, enabled=False)
        self.heard: list[tuple[str, float]] = []

    def step(self, description: str, *, force: bool = False) -> None:
        super().step(description, force=force)
        self.heard.append((description, self.completed))

    def within(self, description: str, done: int, of: int) -> None:
        super().within(description, done, of)
        self.heard.append((description, self.completed))


def test_loading_a_directory_moves_the_bar_file_by_file(tmp_path: Path) -> None:
    market = synthetic_market(
        3, start_ms=1_704_067_200_000, n=50, interval="1h", symbols=["BTC", "ETH", "SOL"]
    )
    for sym, candles in market.items():
        write_csv(candles, tmp_path / f"{sym}-USDC_synthetic_1h.csv")
    p = Heard()
    loaded = load_data(
        [tmp_path], interval=None, assets=None, exchange=None, allow_gaps=True, progress=p
    )
    assert list(loaded.candles) == ["BTC", "ETH", "SOL"]
    assert p.heard == [
        (f"loading {tmp_path}", 0.0),
        ("loading BTC-USDC_synthetic_1h.csv", 0.0),
        ("loading ETH-USDC_synthetic_1h.csv", pytest.approx(1 / 3)),
        ("loading SOL-USDC_synthetic_1h.csv", pytest.approx(2 / 3)),
    ]
