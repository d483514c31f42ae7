"""Sweeps: grid parsing, walk-forward windows, and results equal to plain backtests."""

from __future__ import annotations

import itertools
import math
import sys
import types
from dataclasses import replace
from typing import Any

import pytest

import strategies
from bot.backtest.engine import BacktestConfig, run_backtest
from bot.backtest.stats import summarize
from bot.backtest.sweep import (
    SweepError,
    SweepOptions,
    evaluate_chunk,
    parse_grid,
    run_sweep,
    walk_forward_windows,
)
from tests.unit.backtest.conftest import LOOSE


def test_grid_ranges_include_their_stop() -> None:
    grid = parse_grid("fast=5:50:5, slow=20:200:10,kind=sma|ema,level=0.5:1.5:0.25")
    assert grid["fast"] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert grid["slow"][0] == 20 and grid["slow"][-1] == 200 and len(grid["slow"]) == 19
    assert grid["kind"] == ["sma", "ema"]
    assert grid["level"] == [0.5, 0.75, 1.0, 1.25, 1.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "expected key=start:stop:step"),
        ("fast=5:1:1", "stop >= start"),
        ("fast=1:5", "start:stop:step"),
        ("fast=a:b:c", "must be numbers"),
        ("fast=1:2:1,fast=3:4:1", "twice"),
        ("", "empty"),
    ],
)
def test_bad_grids_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_grid(text)


def test_walk_forward_test_windows_tile_the_end() -> None:
    folds = walk_forward_windows(100, 1100, 4, 0.6)
    tests = [t for _, t in folds]
    assert tests[-1][1] == 1100
    assert all(a[1] == b[0] for a, b in itertools.pairwise(tests))
    for train, test in folds:
        assert train[1] == test[0] and train[0] < train[1] < test[1]
    assert folds[0][0][0] == 100
    one = walk_forward_windows(0, 1000, 1, 0.7)
    assert one == [((0, 700), (700, 1000))]


def options(**kw: Any) -> SweepOptions:
    base = dict(
        strategy="ema_cross",
        grid="fast=5:15:5,slow=20:40:10",
        params=["kind=sma"],
        data=[],
        synthetic=3,
        start_ms=1_704_067_200_000,
        end_ms=1_704_067_200_000 + 200 * 86_400_000,
        interval="1h",
        assets=["BTC", "ETH"],
        exchange=None,
        config=BacktestConfig(limits=LOOSE, reentry=False),
        workers=1,
    )
    base.update(kw)
    return SweepOptions(**base)  # type: ignore[arg-type]


def test_every_row_equals_a_plain_backtest_of_its_window() -> None:
    res = run_sweep(options(walk_forward=2, train_frac=0.6))
    assert len(res.rows) == 9
    from bot.backtest.sweep import DataSpec, _market

    opts = options()
    market = _market(DataSpec((), 3, "1h", ("BTC", "ETH"), None, opts.start_ms, opts.end_ms))
    for row in res.rows[:3]:
        st = strategies.create("ema_cross", {"kind": "sma", "interval": "1h", **row.params})
        for f, ((a, b), (c, d)) in enumerate(res.folds):
            for (lo, hi), got in (((a, b), row.train[f]), ((c, d), row.test[f])):
                cfg = replace(
                    opts.config,
                    start_ms=int(market.ts[lo]),
                    end_ms=int(market.ts[hi]) if hi < len(market) else None,
                )
                s = summarize(run_backtest([st], market, cfg))  # type: ignore[list-item]
                assert got["trades"] == s.trade.trades
                assert got["total_return"] == pytest.approx(s.total_return_pct, abs=1e-9)
                assert got["max_drawdown"] == pytest.approx(s.max_drawdown_pct, abs=1e-9)
                if math.isfinite(s.sharpe):
                    assert got["sharpe"] == pytest.approx(s.sharpe, rel=1e-9)


def test_ranking_is_by_the_in_sample_metric() -> None:
    res = run_sweep(options(metric="total_return"))
    scores = [r.mean("train", "total_return") for r in res.rows]
    assert scores == sorted(scores, reverse=True)
    assert res.chosen[0][1] is res.rows[0]


def test_invalid_combinations_are_counted_not_fatal() -> None:
    res = run_sweep(options(grid="fast=10:30:10,slow=20:30:10"))
    # fast 20/slow 20, fast 30/slow 20 and fast 30/slow 30 break fast < slow
    assert sum(res.refused.values()) == 3 and len(res.rows) == 3


def test_parallel_workers_give_the_same_ranking_as_one_process() -> None:
    one = run_sweep(options(walk_forward=2))
    two = run_sweep(options(walk_forward=2, workers=2))
    assert [(r.params, r.train, r.test) for r in one.rows] == [
        (r.params, r.train, r.test) for r in two.rows
    ]


def test_memoised_indicators_change_nothing() -> None:
    from bot.backtest.sweep import DataSpec

    opts = options()
    spec = DataSpec((), 3, "1h", ("BTC", "ETH"), None, opts.start_ms, opts.end_ms)
    combos = [{"fast": f, "slow": s} for f in (5, 8) for s in (20, 30)]
    windows = [(0, 2000), (2000, 4800)]
    plain = evaluate_chunk(
        spec, "ema_cross", {"kind": "sma"}, combos, windows, opts.config, memo=False
    )
    cached = evaluate_chunk(spec, "ema_cross", {"kind": "sma"}, combos * 2, windows, opts.config)
    assert cached == plain * 2
    # and the strategy modules get the plain functions back afterwards
    import strategies.ema_cross
    from bot.market import indicators

    assert strategies.ema_cross.smas is indicators.smas


def test_memoised_smas_compute_each_average_once_and_share_smas_entries() -> None:
    import numpy as np

    from bot.backtest.sweep import _Memo
    from bot.market import indicators

    x = np.cumsum(np.random.default_rng(2).normal(size=500)) + 100
    x.flags.writeable = False  # the candles' columns are read-only
    asked: list[tuple[int, ...]] = []

    def smas(x: Any, *periods: int) -> tuple[Any, ...]:
        asked.append(periods)
        return indicators.smas(x, *periods)

    memo = _Memo(10**8)
    cached = memo.wrap_smas(smas)
    sma = memo.wrap(indicators.sma)
    got = [cached(x, 5, 20), cached(x, 5, 30), cached(x, 8, 20), cached(x, 8, 8)]
    assert asked == [(5, 20), (30,), (8,)]
    for (a, b), (n, m) in zip(got, [(5, 20), (5, 30), (8, 20), (8, 8)], strict=True):
        assert np.array_equal(a, indicators.sma(x, n), equal_nan=True)
        assert np.array_equal(b, indicators.sma(x, m), equal_nan=True)
    assert got[3][0] is not got[3][1]  # copies: a strategy may change what it gets
    got[0][0][:] = 0.0
    assert np.array_equal(cached(x, 5)[0], indicators.sma(x, 5), equal_nan=True)
    assert np.array_equal(sma(x, 30), indicators.sma(x, 30), equal_nan=True)
    assert len(memo.items) == 4  # sma(x, 30) found the entry smas made
    writable = x.copy()
    cached(writable, 5)
    assert asked[-1] == (5,) and len(memo.items) == 4  # a writable series is never kept


def test_memoised_smas_answer_even_when_the_memo_cannot_keep_them() -> None:
    import numpy as np

    from bot.backtest.sweep import _Memo
    from bot.market import indicators

    x = np.cumsum(np.random.default_rng(4).normal(size=500)) + 100
    x.flags.writeable = False
    memo = _Memo(limit=x.nbytes // 2)  # smaller than one average: every entry is evicted
    got = memo.wrap_smas(indicators.smas)(x, 5, 20, 5)
    want = indicators.smas(x, 5, 20, 5)
    assert all(np.array_equal(g, w, equal_nan=True) for g, w in zip(got, want, strict=True))
    assert got[0] is not got[2]
    assert not memo.items


def test_random_subset_and_halving() -> None:
    res = run_sweep(options(grid="fast=3:12:1,slow=20:60:10", sample=20, seed=1))
    assert res.evaluated == 20
    halved = run_sweep(options(grid="fast=3:12:1,slow=20:60:10", halving=True))
    assert halved.rungs[0] == 50 and halved.rungs[1] < 50 and halved.rungs[2] < halved.rungs[1]
    assert len(halved.rows) == halved.rungs[-1]


def test_unknown_metric_and_overlap_are_refused() -> None:
    with pytest.raises(SweepError, match="--metric"):
        run_sweep(options(metric="luck"))
    with pytest.raises(SweepError, match="both fixed"):
        run_sweep(options(params=["kind=sma", "fast=3"]))


def test_ray_address_runs_the_same_task_function_on_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `ray` (the real one is an optional extra): the sweep must go through
    ray.init(address) / ray.remote(evaluate_chunk).remote / ray.get, and rank the same."""
    calls: dict[str, Any] = {"remote": 0}

    class Ref:
        def __init__(self, value: Any) -> None:
            self.value = value

    fake = types.ModuleType("ray")

    def init(address: str, **kw: Any) -> None:
        calls["address"] = address

    def remote(fn: Any) -> Any:
        calls["fn"] = fn

        class Task:
            @staticmethod
            def remote(*args: Any, **kwargs: Any) -> Ref:  # Ray passes keywords on too
                calls["remote"] += 1
                return Ref(fn(*args, **kwargs))

        return Task

    fake.init = init  # type: ignore[attr-defined]
    fake.remote = remote  # type: ignore[attr-defined]
    fake.get = lambda refs: [r.value for r in refs]  # type: ignore[attr-defined]
    fake.shutdown = lambda: calls.setdefault("shutdown", True)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", fake)
    res = run_sweep(options(ray_address="ray://head:10001"))
    local = run_sweep(options())
    assert calls["address"] == "ray://head:10001" and calls["fn"] is evaluate_chunk
    assert calls["remote"] >= 1 and calls.get("shutdown")
    assert [r.params for r in res.rows] == [r.params for r in local.rows]


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SweepError, match=r"alura-bot\[ray\]"):
        run_sweep(options(ray_address="auto"))
