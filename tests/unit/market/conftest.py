"""Fixtures for the candle, indicator and signal tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.market.data import CSV_HEADER, Candles
from tests.conftest import SHARED_CANDLES

WriteCsv = Callable[..., Path]
MakeCandles = Callable[..., Candles]


@pytest.fixture
def shared_candles_dir() -> Path:
    """The team's real candle files; tests using them skip when the folder is not there."""
    if not SHARED_CANDLES.is_dir():
        pytest.skip(f"shared candle data not found at {SHARED_CANDLES}")
    return SHARED_CANDLES


@pytest.fixture
def write_candle_csv(tmp_path: Path) -> WriteCsv:
    """Write rows (strings, without the header) to a candle CSV in tmp_path."""

    def write(
        rows: Sequence[str],
        name: str = "BTC-USDC_test_5m.csv",
        header: str | None = CSV_HEADER,
    ) -> Path:
        path = tmp_path / name
        lines = ([header] if header is not None else []) + list(rows)
        path.write_text("".join(f"{line}\n" for line in lines))
        return path

    return write


def random_candles(
    seed: int = 0,
    n: int = 500,
    *,
    interval: str = "5m",
    symbol: str = "BTC",
    start_ms: int = 1_741_946_400_000,
    price: float = 100.0,
    drop: float = 0.0,
) -> Candles:
    """Valid random OHLCV candles; `drop` removes that fraction of rows to make gaps."""
    rng = np.random.default_rng(seed)
    step = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000}[interval]
    close = price * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate(([price], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.exponential(0.003, n))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.003, n))
    volume = rng.exponential(10.0, n)
    volume[rng.random(n) < 0.05] = 0.0
    ts = start_ms + np.arange(n, dtype=np.int64) * step
    keep = np.ones(n, dtype=bool)
    if drop:
        keep[1:-1] = rng.random(n - 2) >= drop
    return Candles(
        symbol, interval, ts[keep], open_[keep], high[keep], low[keep], close[keep], volume[keep]
    )


@pytest.fixture
def make_candles() -> MakeCandles:
    return random_candles
