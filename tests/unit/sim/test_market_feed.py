"""The simulator's market feed: a synthetic market keeps going past its horizon, identical to one
long generation, in bounded memory; a CSV market keeps its fixed end."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bot.market.data import SyntheticMarket, synthetic_market, write_csv
from bot.sim.market_feed import KEEP_SLACK_MS, KEPT_BARS, MarketFeed

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
START = 1_736_121_600_000  # 2025-01-06T00:00Z
SEED = 7
SYMBOLS = ("BTC", "DOGE")


def short_feed(history_days: int = 3) -> MarketFeed:
    return MarketFeed.synthetic(SEED, START, history_days=history_days, horizon_days=2)


@pytest.fixture(scope="module")
def long_feed() -> MarketFeed:
    """The same market generated far enough ahead from the start that it never extends."""
    return MarketFeed.synthetic(SEED, START, history_days=3, horizon_days=50)


def assert_same_signal(
    feed: MarketFeed, long_feed: MarketFeed, symbol: str, interval: str, now: int
) -> None:
    """Exactly equal while the interval still holds every candle since the start; once it
    keeps only its last KEPT_BARS, its recursive indicators are re-seeded there and differ
    by float rounding only."""
    got = feed.signal_json(symbol, interval, now)
    want = long_feed.signal_json(symbol, interval, now)
    if (
        feed.series(symbol, interval).candles.ts[0]
        == long_feed.series(symbol, interval).candles.ts[0]
    ):
        assert got == want, (symbol, interval, now)
        return
    assert len(feed.series(symbol, interval).candles) >= KEPT_BARS
    scale = 1e-9 * want["indicators"]["close"]
    assert got["indicators"] == pytest.approx(want["indicators"], rel=1e-9, abs=scale)
    assert got["strength"] == pytest.approx(want["strength"], abs=1e-9)
    got["indicators"], got["strength"] = want["indicators"], want["strength"]
    assert got == want, (symbol, interval, now)


def test_pieces_of_the_synthetic_market_are_one_generation() -> None:
    market = SyntheticMarket(SEED, start_ms=START, interval="1m")
    pieces = [market.take(n) for n in (1, 999, 4321, 20_000)]
    whole = synthetic_market(SEED, start_ms=START, n=25_321, interval="1m")
    for symbol, candles in whole.items():
        for field in ("ts", "open", "high", "low", "close", "volume"):
            joined = np.concatenate([getattr(p[symbol], field) for p in pieces])
            assert joined.tobytes() == getattr(candles, field).tobytes(), (symbol, field)


def test_a_short_horizon_keeps_closing_candles(long_feed: MarketFeed) -> None:
    feed = short_feed()
    assert feed.extendable
    horizon = feed.last_ms
    now = START + 10 * DAY + 17 * MIN + 5_000
    assert now > horizon + 7 * DAY
    latest = feed.latest_json("BTC", "1h", now)
    assert latest is not None and latest["time"] == now // HOUR * HOUR - HOUR
    assert latest == long_feed.latest_json("BTC", "1h", now)
    signal = feed.signal_json("ETH", "15m", now)
    assert signal["candleTime"] == now // (15 * MIN) * (15 * MIN) - 15 * MIN
    assert signal == long_feed.signal_json("ETH", "15m", now)
    bars = feed.bars("BTC", now - 10 * MIN, now)
    assert [b[0] for b in bars] == list(range(now // MIN * MIN - 9 * MIN, now // MIN * MIN, MIN))
    assert bars == long_feed.bars("BTC", now - 10 * MIN, now)
    assert feed.price("SOL", now) == long_feed.price("SOL", now)
    assert feed.direction("BTC", now) == long_feed.direction("BTC", now)
    assert feed.last_ms > now


def test_candles_after_extensions_are_those_of_one_long_generation(long_feed: MarketFeed) -> None:
    feed = short_feed()
    times = [START + d * DAY + 7 * MIN + 123 for d in (1, 4, 9, 20, 33, 45)]
    for now in times:
        for symbol in SYMBOLS:
            for interval in feed.intervals:
                got = feed.candles_json(symbol, interval, now, KEPT_BARS, None, None)
                assert got == long_feed.candles_json(symbol, interval, now, KEPT_BARS, None, None)
                assert_same_signal(feed, long_feed, symbol, interval, now)
            window = (now - 2 * DAY, now - DAY)
            assert feed.candles_json(symbol, "5m", now, 1000, *window) == long_feed.candles_json(
                symbol, "5m", now, 1000, *window
            )
            assert feed.bars(symbol, now - DAY, now) == long_feed.bars(symbol, now - DAY, now)
    assert feed.first_ms > START, "old base rows were dropped"
    earlier = times[2]
    for interval in ("1h", "4h", "1d"):
        assert feed.candles_json("BTC", interval, earlier, 100, None, None) == (
            long_feed.candles_json("BTC", interval, earlier, 100, None, None)
        ), "an interval's latest candles outlive the base rows they came from"


def test_memory_stays_bounded_over_many_extensions() -> None:
    feed = short_feed(history_days=2)
    held_days = (2 * DAY + KEEP_SLACK_MS + DAY + 3 * DAY) // DAY
    for day in range(1, 240, 3):
        now = START + day * DAY + 11 * MIN
        assert feed.price("BTC", now) > 0
        latest = feed.latest_json("BTC", "1d", now)
        assert latest is not None and latest["time"] == now // DAY * DAY - DAY
        assert feed.last_ms > now
        assert all(len(c) <= held_days * 1440 for c in feed.base.values())
    days = feed.candles_json("BTC", "1d", now, KEPT_BARS, None, None)["candles"]
    assert [d["time"] for d in days] == list(range(START - 2 * DAY, now // DAY * DAY, DAY))
    assert len(feed.candles_json("BTC", "1m", now, 10**9, None, None)["candles"]) <= (
        KEPT_BARS + held_days * 1440
    )
    far = now + 400 * DAY
    latest = feed.latest_json("DOGE", "4h", far)
    assert latest is not None and latest["time"] == far // (4 * HOUR) * (4 * HOUR) - 4 * HOUR
    assert all(len(c) <= held_days * 1440 for c in feed.base.values())
    assert feed.first_ms > far - held_days * DAY


def test_a_csv_market_keeps_its_fixed_end(tmp_path: Path) -> None:
    for symbol, candles in synthetic_market(
        3, start_ms=START, n=3000, interval="5m", symbols=["BTC", "ETH"]
    ).items():
        write_csv(candles, tmp_path / f"{symbol}-USDC_hyperliquid_5m.csv")
    feed = MarketFeed.from_csv_dir(tmp_path, "5m")
    assert not feed.extendable
    end, base = feed.last_ms, feed.base
    assert end == START + 3000 * 5 * MIN
    last = feed.latest_json("BTC", "1h", end)
    later = end + 30 * DAY
    assert feed.latest_json("BTC", "1h", later) == last
    assert feed.signal_json("ETH", "1h", later)["candleTime"] == end - HOUR
    assert feed.bars("BTC", end, later) == []
    assert feed.price("BTC", later) == feed.price("BTC", end)
    assert (feed.last_ms, feed.first_ms) == (end, START)
    assert feed.base is base


def test_readers_on_several_threads_see_one_market(long_feed: MarketFeed) -> None:
    feed = short_feed()
    times = [START + h * HOUR + 59_999 for h in range(0, 45 * 24, 37)]
    want = {
        t: (
            long_feed.candles_json("BTC", "1h", t, 100, None, None),
            long_feed.signal_json("BTC", "1h", t),
        )
        for t in times
    }
    start = threading.Barrier(4)
    wrong: list[int] = []

    def read(order: list[int]) -> None:
        start.wait()
        for t in order:
            got = (
                feed.candles_json("BTC", "1h", t, 100, None, None),
                feed.signal_json("BTC", "1h", t),
            )
            if got != want[t]:
                wrong.append(t)

    orders = [times, times[::-1], times[::2] + times[1::2], sorted(times, key=lambda t: t % 7)]
    threads = [threading.Thread(target=read, args=(o,)) for o in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


@pytest.mark.parametrize("interval", ["5m", "1h", "1d"])
def test_aggregated_volume_is_the_exact_sum_without_float_noise(
    long_feed: MarketFeed, interval: str
) -> None:
    """An aggregated candle's volume reads as the decimal sum of its base volumes (never as
    27622.324220000002)."""
    from decimal import Decimal

    now = START + 3 * DAY
    rows = long_feed.candles_json("BTC", interval, now, 30, None, None)["candles"]
    base = long_feed.base["BTC"]
    step = rows[1]["time"] - rows[0]["time"]
    for row in rows:
        inside = (base.ts >= row["time"]) & (base.ts < row["time"] + step)
        exact = sum((Decimal(repr(v)) for v in base.volume[inside].tolist()), Decimal(0))
        assert Decimal(repr(row["volume"])) == exact, (interval, row)
