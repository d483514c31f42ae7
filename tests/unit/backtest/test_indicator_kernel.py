"""The compiled twins of sma / crossover / crossunder give numpy's results, bit for bit.

Each case computes `bot.market.indicators` twice, once on its numpy code (no twins) and once
routed through a kernel mode's twins (plain Python, numba's JIT, the ahead-of-time module), and
compares the float64 bit patterns: the same values, the same signed zeros, NaN in the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.backtest import compiled, indicator_kernel
from bot.market import indicators as ind
from bot.market.data import load_csv
from tests.conftest import SHARED_CANDLES

MODES = ["python", "jit", "aot"]


@contextmanager
def routed(twins: dict[str, Callable[..., Any]] | None) -> Iterator[None]:
    """`indicators` on the given twins (None: numpy) for the block, then as it was."""
    before = ind.compiled_twins()
    ind.use_compiled(twins)
    try:
        yield
    finally:
        ind.use_compiled(before)


def plain_twins() -> dict[str, Callable[..., Any]]:
    return {t.__name__: t for t in indicator_kernel.TWINS}


def twins_of(mode: str) -> dict[str, Callable[..., Any]]:
    return plain_twins() if mode == "python" else compiled.twins(mode)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values and signed zeros, NaN exactly where the other has NaN (x86 arithmetic may
    give a NaN another sign bit depending on operand order; a NaN is a NaN to every reader)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype != np.float64:
        return bool(np.array_equal(a, b))
    nan = np.isnan(a)
    return bool(
        np.array_equal(nan, np.isnan(b))
        and np.array_equal(a[~nan].view(np.uint64), b[~nan].view(np.uint64))
    )


def random_series(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A series of one of the shapes numpy's SMA treats specially."""
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, size)))
    if kind == "leading_nan":
        x[: rng.integers(0, size + 1)] = np.nan
    elif kind == "inner_nan":
        x[rng.choice(size, max(1, size // 10), replace=False)] = np.nan
    elif kind == "all_nan":
        x[:] = np.nan
    elif kind == "constant":
        x[:] = rng.choice([0.0, -0.0, 3.0, 1e-300, 123456.789])
    elif kind == "huge":
        x *= 1e305  # running sums overflow to inf, window differences become NaN
    elif kind == "tiny":
        x *= 1e-310  # subnormal
    elif kind == "inf":
        x[rng.choice(size, max(1, size // 20), replace=False)] = rng.choice([np.inf, -np.inf])
    elif kind == "first_inf":
        x[0] = np.inf
    elif kind == "mixed":
        x *= np.where(rng.random(size) < 0.5, 1e12, 1e-12)
        x[rng.random(size) < 0.05] = -0.0
    elif kind == "signed":
        x = rng.normal(0, 1, size)
        x[rng.random(size) < 0.2] = 0.0
    return x


KINDS = [
    "plain",
    "leading_nan",
    "inner_nan",
    "all_nan",
    "constant",
    "huge",
    "tiny",
    "inf",
    "first_inf",
    "mixed",
    "signed",
]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf, both ways
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_sma_twin_gives_numpys_bits(mode: str, kind: str) -> None:
    twins = twins_of(mode)
    rng = np.random.default_rng(KINDS.index(kind))
    cases = 0
    for size in (0, 1, 2, 3, 7, 31, 64, 257):
        for n in sorted({1, 2, 3, max(1, size // 2), max(1, size - 1), max(1, size), size + 5}):
            x = random_series(rng, size, kind) if size else np.empty(0)
            want = ind.sma(x, n)  # numpy (the routing is off outside `routed`)
            with routed(twins):
                got = ind.sma(x, n)
            assert same_bits(got, want), (kind, size, n, got, want)
            cases += 1
    assert cases > 40


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_smas_from_one_running_sum_give_each_smas_bits(mode: str, kind: str) -> None:
    # the periods share one running sum; each result is still sma(x, n)'s numpy bits
    rng = np.random.default_rng(100 + KINDS.index(kind))
    for size in (0, 1, 5, 64, 300):
        x = random_series(rng, size, kind) if size else np.empty(0)
        periods = (1, 10, 10, 30, size, size + 1) if size else (1, 3)
        want = [ind.sma(x, n) for n in periods]
        assert all(same_bits(a, b) for a, b in zip(ind.smas(x, *periods), want, strict=True))
        with routed(twins_of(mode)):
            got = ind.smas(x, *periods)
        assert len(got) == len(periods)
        for g, w, n in zip(got, want, periods, strict=True):
            assert same_bits(g, w), (kind, size, n)


@pytest.mark.parametrize("mode", MODES)
def test_sma_twin_reads_strided_and_integer_input_as_numpy_does(mode: str) -> None:
    # the compiled module checks neither dtype nor layout: `sma` must hand it float64, contiguous
    rng = np.random.default_rng(7)
    wide = random_series(rng, 400, "inner_nan")
    ints = rng.integers(-1000, 1000, 300)
    for x in (wide[::3], wide[::-1], ints, ints.tolist()):
        with routed(twins_of(mode)):
            got = ind.sma(x, 7)
        assert same_bits(got, ind.sma(x, 7))


@pytest.mark.parametrize("mode", MODES)
def test_cross_twins_give_numpys_flags(mode: str) -> None:
    rng = np.random.default_rng(11)
    for size in (0, 1, 2, 5, 200):
        a = rng.integers(0, 4, size).astype(np.float64)  # many exact ties
        b = rng.integers(0, 4, size).astype(np.float64)
        a[rng.random(size) < 0.1] = np.nan
        b[rng.random(size) < 0.1] = np.nan
        for other in (b, 2.0, b[::-1]):
            want = (ind.crossover(a, other), ind.crossunder(a, other))
            with routed(twins_of(mode)):
                got = (ind.crossover(a, other), ind.crossunder(a, other))
            for g, w in zip(got, want, strict=True):
                assert g.dtype == np.bool_
                assert np.array_equal(g, w), (size, a, other)


@pytest.mark.parametrize("mode", MODES)
def test_pack_twin_gives_the_plain_packing(mode: str) -> None:
    from bot.backtest.engine import _pack

    pack = twins_of(mode)["pack_flags_into"]
    rng = np.random.default_rng(5)
    for size in (0, 1, 3, 100, 1000):
        parts = [rng.random(size) < rate for rate in (0.1, 0.3, 0.0, 0.05)]
        for warm in (0, 1, 7, size, size + 3):
            want = _pack(*parts)
            want[:warm] = 0
            got = np.full(size, 99, dtype=np.uint8)
            pack(*(p.view(np.uint8) for p in parts), warm, got)
            assert np.array_equal(got, want), (size, warm)


def shared_files() -> list[Path]:
    if not SHARED_CANDLES.is_dir():
        pytest.skip(f"shared candle data not found at {SHARED_CANDLES}")
    files = sorted(SHARED_CANDLES.glob("*.csv"))
    if not files:
        pytest.skip(f"no candle files in {SHARED_CANDLES}")
    return files


def test_sma_and_cross_twins_give_numpys_bits_on_every_shared_candle_file() -> None:
    twins = compiled.twins("aot")
    for path in shared_files():
        candles = load_csv(path)
        for column in (candles.close, candles.volume):
            for n in (1, 2, 10, 30, 200):
                want = ind.sma(column, n)
                with routed(twins):
                    got = ind.sma(column, n)
                assert same_bits(got, want), (path.name, n)
        fast, slow = ind.sma(candles.close, 10), ind.sma(candles.close, 30)
        with routed(twins):
            up, down = ind.crossover(fast, slow), ind.crossunder(fast, slow)
        assert np.array_equal(up, ind.crossover(fast, slow)), path.name
        assert np.array_equal(down, ind.crossunder(fast, slow)), path.name


def test_loading_a_compiled_loop_routes_the_indicators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_loaded", {})
    monkeypatch.setattr(compiled, "_loaded_twins", {})
    with routed(None):
        compiled.load("python")
        assert ind.compiled_twins() == {}  # the plain-Python mode keeps numpy's indicators
        compiled.load("aot")
        assert sorted(ind.compiled_twins()) == sorted(indicator_kernel.SIGNATURES)
    assert compiled.twins("python") == {}


def test_kernel_key_changes_with_the_indicator_twins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = compiled.kernel_key()
    original = compiled._sources()
    twin_source = Path(indicator_kernel.__file__ or "")
    assert twin_source in original
    fake = tmp_path / "indicator_kernel.py"
    fake.write_bytes(twin_source.read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(
        compiled, "_sources", lambda: [fake if p == twin_source else p for p in original]
    )
    assert compiled.kernel_key() != key
