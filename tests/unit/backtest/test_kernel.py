"""The compiled loop against the session model's own objects, and against its plain-Python self.

Random multi-asset markets (with missing candles), random entry/exit flags, two strategies with
different sessions (quick with re-entry, advanced with a time stop and two positions) and tight
risk limits, so every rule fires somewhere. The trade lists must be identical, number for number.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from bot.backtest import compiled
from bot.backtest import kernel as K
from bot.backtest.engine import BacktestConfig, Market, session_row, simulate
from bot.market.data import Candles
from tests.unit.backtest.conftest import HOUR, LOOSE, T0, flags
from tests.unit.backtest.oracle import run_oracle


def random_market(seed: int, n: int = 400) -> Market:
    rng = np.random.default_rng(seed)
    out = {}
    for a, sym in enumerate(("BTC", "ETH", "SOL")):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, n)))
        open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.002, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
        ts = T0 + np.arange(n, dtype=np.int64) * HOUR
        keep = np.ones(n, dtype=bool)
        if a == 1:  # ETH starts later and misses some candles
            keep[:17] = False
            keep[rng.choice(n, 25, replace=False)] = False
        out[sym] = Candles(
            sym,
            "1h",
            ts[keep],
            open_[keep],
            high[keep],
            low[keep],
            close[keep],
            np.ones(int(keep.sum())),
        )
    return Market.from_candles(out)


def random_flags(seed: int, market: Market, n_strategies: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    shape = (len(market), n_strategies, len(market.symbols))
    bits = np.zeros(shape, dtype=np.uint8)
    bits |= (rng.random(shape) < 0.08).astype(np.uint8) * K.ENTER_LONG
    bits |= (rng.random(shape) < 0.05).astype(np.uint8) * K.ENTER_SHORT
    bits |= (rng.random(shape) < 0.06).astype(np.uint8) * K.EXIT_LONG
    bits[:3] = 0
    return bits


STRATEGIES = [
    flags(session={"budget": 120, "profit_target": 3, "loss_threshold": 1.5}),
    flags(
        session={
            "kind": "advanced",
            "budget": 80,
            "execution_strategy": "Aggressive",
            "strategy_duration": "1D",
        }
    ),
]


def configs() -> list[BacktestConfig]:
    tight = replace(
        LOOSE,
        max_open_sessions=2,
        cooldown_s=3 * 3600,
        daily_loss_limit=Decimal(3),
        max_total_budget=Decimal(400),
        max_budget_per_session=Decimal(250),
        min_free_balance=Decimal(20),
    )
    return [
        BacktestConfig(balance=300.0, limits=tight),
        BacktestConfig(balance=1000.0, limits=LOOSE, reentry=False),
        BacktestConfig(
            balance=250.0, limits=tight, start_ms=T0 + 50 * HOUR, end_ms=T0 + 300 * HOUR
        ),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("cfg_index", [0, 1, 2])
def test_compiled_loop_matches_session_state_objects(seed: int, cfg_index: int) -> None:
    cfg = configs()[cfg_index]
    market = random_market(seed)
    bits = random_flags(seed, market)
    sessions = np.stack([session_row(s, cfg) for s in STRATEGIES])
    raw = simulate(market, bits, sessions, cfg)
    expected = run_oracle(market, bits, STRATEGIES, cfg)
    got = [tuple(float(x) for x in row[: K.TR_REASON + 1]) for row in raw.trades]
    want = [tuple(float(x) for x in row) for row in expected.trades]
    assert len(got) > 10
    assert got == want
    got_dec = [tuple(float(x) for x in row[: K.DC_CODE + 1]) for row in raw.decisions]
    assert got_dec == [tuple(float(x) for x in d) for d in expected.decisions]
    assert any(row[K.DC_CODE] != 0 for row in raw.decisions) or cfg_index == 1
    np.testing.assert_allclose(raw.equity, expected.equity, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [5, 6])
def test_compiled_and_plain_python_loops_agree_bit_for_bit(seed: int) -> None:
    cfg = configs()[0]
    market = random_market(seed)
    bits = random_flags(seed, market)
    sessions = np.stack([session_row(s, cfg) for s in STRATEGIES])
    fast = simulate(market, bits, sessions, cfg)
    slow = simulate(market, bits, sessions, cfg, kernel=compiled.load("python"))
    assert np.array_equal(fast.trades, slow.trades)
    assert np.array_equal(fast.decisions, slow.decisions)
    assert np.array_equal(fast.sessions, slow.sessions)
    assert np.array_equal(fast.equity, slow.equity)


@pytest.mark.parametrize("seed", [7, 8])
@pytest.mark.parametrize("strategy", [0, 1])
@pytest.mark.parametrize("cfg_index", [0, 1, 2])
def test_one_strategy_on_one_asset_matches_the_plain_loop_and_the_objects(
    seed: int, strategy: int, cfg_index: int
) -> None:
    # the loop's one-byte-a-row path for quiet stretches (one strategy, one asset)
    cfg = configs()[cfg_index]
    whole = random_market(seed)
    market = Market.from_candles({"SOL": whole.candles["SOL"]})
    bits = random_flags(seed, market, n_strategies=1)
    st = STRATEGIES[strategy]
    sessions = np.stack([session_row(st, cfg)])
    fast = simulate(market, bits, sessions, cfg)
    slow = simulate(market, bits, sessions, cfg, kernel=compiled.load("python"))
    for name in ("trades", "decisions", "sessions", "equity"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.in_market == slow.in_market
    expected = run_oracle(market, bits, [st], cfg)
    got = [tuple(float(x) for x in row[: K.TR_REASON + 1]) for row in fast.trades]
    assert len(got) > 5
    assert got == [tuple(float(x) for x in row) for row in expected.trades]
    np.testing.assert_allclose(fast.equity, expected.equity, rtol=0, atol=1e-9)


def test_output_arrays_grow_when_a_run_fills_them() -> None:
    cfg = BacktestConfig(balance=10_000.0, limits=LOOSE)
    market = random_market(9, n=200)
    bits = np.full((len(market), 1, 3), K.ENTER_LONG | K.EXIT_LONG, dtype=np.uint8)
    bits[::2, 0, 0] = K.ENTER_LONG
    sessions = np.stack([session_row(STRATEGIES[0], cfg)])
    raw = simulate(market, bits, sessions, cfg)
    # every other bar decides something on every asset: far more than the first guess of 64
    assert len(raw.decisions) > 64 * 4
    assert len(raw.trades) > 64


@pytest.mark.parametrize("which", ["trades", "decisions", "sessions"])
def test_the_loop_never_writes_past_an_output_array(which: str) -> None:
    # The compiled loop has no bounds checks: it must stop (STATUS_*_FULL) before a row whose
    # records might not fit. Each array is a view of a larger one filled with NaN, so a record
    # written past its end would show; with room enough, the records are the plain loop's.
    cfg = configs()[0]
    market = random_market(3)
    bits = random_flags(3, market)
    sessions = np.stack([session_row(s, cfg) for s in STRATEGIES])
    want = simulate(market, bits, sessions, cfg, kernel=compiled.load("python"))
    columns = {"trades": K.N_TR, "decisions": K.N_DC, "sessions": K.N_SE}
    needed = len(getattr(want, which))
    full_code = {
        "trades": K.STATUS_TRADES_FULL,
        "decisions": K.STATUS_DECISIONS_FULL,
        "sessions": K.STATUS_SESSIONS_FULL,
    }[which]
    t0, t1 = market.window(cfg.start_ms, cfg.end_ms)
    slots = int(sessions[:, K.SP_MAX_POSITIONS].max())
    ip = np.array([t0, t1, market.interval_ms, cfg.decision_delay_ms, slots], dtype=np.int64)
    fn = compiled.load()
    outcomes = set()
    for room in range(needed + 12):
        big = {
            k: np.full((needed + 64 if k == which else 4096, n), np.nan) for k, n in columns.items()
        }
        out = {k: v[:room] if k == which else v for k, v in big.items()}
        counts = np.zeros(K.N_CT, dtype=np.int64)
        status = fn(
            market.ts,
            market.open,
            market.high,
            market.low,
            market.close,
            bits,
            sessions,
            cfg.risk_row(),
            ip,
            out["trades"],
            out["decisions"],
            out["sessions"],
            np.empty(len(market)),
            counts,
        )
        assert np.isnan(big[which][room:]).all(), f"a record was written past {room} {which}"
        outcomes.add(status)
        if status == K.STATUS_OK:
            assert room >= needed
            assert np.array_equal(out["trades"][: counts[K.CT_TRADES]], want.trades)
            assert np.array_equal(out["decisions"][: counts[K.CT_DECISIONS]], want.decisions)
            assert np.array_equal(out["sessions"][: counts[K.CT_SESSIONS]], want.sessions)
        else:
            assert status == full_code
            assert counts[K.CT_STATUS] == full_code
    assert outcomes == {K.STATUS_OK, full_code}


def test_kernel_key_changes_with_the_money_math(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = compiled.kernel_key()
    fake = tmp_path / "session_model.py"
    original = compiled._sources()
    fake.write_bytes(original[1].read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(compiled, "_sources", lambda: [original[0], Path(fake), original[2]])
    assert compiled.kernel_key() != key


def test_kernel_key_changes_with_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    key = compiled.kernel_key()
    monkeypatch.setattr(compiled, "cpu_fingerprint", lambda: "an older CPU without avx2")
    assert compiled.kernel_key() != key


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="no /proc/cpuinfo (not Linux)")
def test_cpu_fingerprint_names_this_cpus_features() -> None:
    words = compiled.cpu_fingerprint().split()
    assert {"sse2", "fp", "asimd"} & set(words), words[:20]


def test_unknown_kernel_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="ALURA_BOT_KERNEL"):
        compiled.load("fortran")
