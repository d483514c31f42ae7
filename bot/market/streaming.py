"""Indicators one candle at a time, bit-identical to the vectorised ones in `indicators`.

The daemon needs only the newest row of a strategy's indicators, yet the vectorised functions
recompute every row each tick: most of a tick's CPU. These continuations keep the recursion's
state and do the same floating-point operations, in the same order, on the same constants as
the blocked recursion in `indicators._recursive_into`, so row t here equals row t there exactly
(tests/unit/market/test_streaming.py checks it row by row). Row t uses candles <= t only.
"""

from __future__ import annotations

import math

import numpy as np

from bot.market.indicators import block_constants

NAN = math.nan


def _np_max(a: float, b: float) -> float:
    """`np.maximum` on two floats: NaN wins, otherwise the larger (the first on ties)."""
    return a if (a >= b or a != a) else b


class Smoother:
    """Exponential smoothing seeded with the mean of the first n values after any leading NaNs,
    as `indicators._smoothed`; `push` returns the smoothed value for the row just given."""

    def __init__(self, n: int, alpha: float) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        self.n = n
        self.alpha = alpha
        q = 1.0 - alpha
        self._direct = q == 0.0
        if not self._direct:
            grow, decay, carry_decay, self._q_block = block_constants(q)
            self._grow: list[float] = grow.tolist()
            self._decay: list[float] = decay.tolist()
            self._carry_decay: list[float] = carry_decay.tolist()
            self._block = len(self._grow)
        self._started = False
        self._seen = 0
        self._seed = 0.0
        self._y0 = NAN
        self._pos = 0
        self._local = 0.0
        self._carry = 0.0

    def push(self, x: float) -> float:
        if not self._started:
            if x != x:
                return NAN
            self._started = True
        if self._seen < self.n:
            self._seen += 1
            self._seed += x
            if self._seen < self.n:
                return NAN
            self._seed /= self.n
            self._y0 = self._seed
            return self._seed
        if self._direct:
            return x
        p = self._pos
        term = (x - self._y0) * self._grow[p]
        self._local = term if p == 0 else self._local + term
        value = self._local * self.alpha * self._decay[p]
        out = (value + self._carry_decay[p] * self._carry) + self._y0
        if p == self._block - 1:
            self._carry = self._q_block * self._carry + value
            self._pos = 0
        else:
            self._pos = p + 1
        return out


def ema_stream(n: int) -> Smoother:
    """`indicators.ema(x, n)` one row at a time."""
    return Smoother(n, 2.0 / (n + 1))


class RsiStream:
    """`indicators.rsi(close, n)` one row at a time."""

    def __init__(self, n: int = 14) -> None:
        self._gain = Smoother(n, 1.0 / n)
        self._loss = Smoother(n, 1.0 / n)
        self._prev = NAN
        self._rows = 0

    def push(self, close: float) -> float:
        self._rows += 1
        prev, self._prev = self._prev, close
        if self._rows == 1:
            return NAN
        change = close - prev
        up = _np_max(change, 0.0)
        gain = self._gain.push(up)
        total = self._loss.push(up - change) + gain
        if total == 0.0:
            return 50.0
        return gain / total * 100.0


class AtrStream:
    """`indicators.atr(high, low, close, n)` one row at a time."""

    def __init__(self, n: int = 14) -> None:
        self._tr = Smoother(n, 1.0 / n)
        self._prev_close = NAN
        self._rows = 0

    def push(self, high: float, low: float, close: float) -> float:
        self._rows += 1
        prev, self._prev_close = self._prev_close, close
        if self._rows == 1:
            return NAN
        wide = _np_max(abs(high - prev), abs(low - prev))
        return self._tr.push(_np_max(high - low, wide))


def tanh(x: float) -> float:
    """numpy's tanh, not libm's: the vectorised signal uses np.tanh and the two may differ in
    the last bit."""
    return float(np.tanh(np.array([x]))[0])
