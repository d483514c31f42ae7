"""Look-ahead detection: does a strategy's row t change when candles after t are appended?

A vectorised strategy is computed once over the whole history in a backtest but live only ever
sees the candles closed so far. If any indicator column or any entry/exit flag at row t differs
between the run over ``candles[:m]`` (m > t) and the run over all candles, the strategy read the
future, and its backtest promises what live trading cannot do. The check recomputes the strategy
on a spread of truncated histories and compares every row they share, exactly (NaN equals NaN):
the project's indicators are prefix-invariant bit for bit, so any difference is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.market.data import Candles
from strategies.base import Signals, Strategy

__all__ = ["Finding", "check_strategy", "cut_points"]

_FLAGS = ("enter_long", "exit_long", "enter_short", "exit_short")


@dataclass(frozen=True)
class Finding:
    """The first row of one column whose value depends on later candles."""

    column: str
    row: int
    time_ms: int
    prefix_len: int
    truncated: float
    full: float
    total: int
    note: str = ""

    def __str__(self) -> str:
        if self.note:
            return f"{self.column}: {self.note}"
        when = datetime.fromtimestamp(self.time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        return (
            f"{self.column} at row {self.row} ({when} UTC) is {self.truncated!r} when the data "
            f"ends at row {self.prefix_len - 1} but {self.full!r} with all {self.total} "
            "candles: it reads later candles"
        )


def cut_points(n: int, warmup: int, count: int = 16) -> list[int]:
    """Prefix lengths to test: a few just past the warm-up, the rest spread to the end."""
    lo = max(2, min(n - 1, warmup + 1))
    early = [lo, lo + 1, lo + 7]
    spread = np.linspace(lo, n - 1, num=max(2, count - len(early))).astype(int).tolist()
    return sorted({m for m in early + spread if 2 <= m < n})


def _first_diff(a: NDArray[Any], b: NDArray[Any]) -> int | None:
    """Index of the first element that differs (NaN equals NaN), or None."""
    if a.dtype == np.bool_ or b.dtype == np.bool_:
        diff = a.astype(np.bool_) != b.astype(np.bool_)
    else:
        x = a.astype(np.float64)
        y = b.astype(np.float64)
        diff = ~((x == y) | (np.isnan(x) & np.isnan(y)))
    idx = np.flatnonzero(diff)
    return int(idx[0]) if idx.size else None


def _flags(sig: Signals) -> dict[str, NDArray[Any]]:
    return {name: np.asarray(getattr(sig, name)) for name in _FLAGS}


def check_strategy(
    strategy: Strategy[Any], candles: Candles, *, cuts: list[int] | None = None
) -> list[Finding]:
    """Findings for every indicator column and flag that changes with later candles."""
    n = len(candles)
    if n < 3:
        return []
    full_cols = strategy.indicators(candles)
    full = {**{f"indicator {k}": np.asarray(v) for k, v in full_cols.items()}}
    full.update({f"signal {k}": v for k, v in _flags(strategy.signals(candles, full_cols)).items()})
    findings: dict[str, Finding] = {}
    for m in cuts or cut_points(n, strategy.warmup):
        part = candles[:m]
        cols = strategy.indicators(part)
        got = {f"indicator {k}": np.asarray(v) for k, v in cols.items()}
        got.update({f"signal {k}": v for k, v in _flags(strategy.signals(part, cols)).items()})
        for name, whole in full.items():
            if name in findings:
                continue
            mine = got.get(name)
            if mine is None or len(mine) != m:
                findings[name] = Finding(
                    name,
                    m - 1,
                    int(candles.ts[m - 1]),
                    m,
                    np.nan,
                    np.nan,
                    n,
                    note=f"missing or of another length when the data ends at row {m - 1}",
                )
                continue
            i = _first_diff(mine, whole[:m])
            if i is not None:
                findings[name] = Finding(
                    name, i, int(candles.ts[i]), m, float(mine[i]), float(whole[i]), n
                )
    return sorted(findings.values(), key=lambda f: (f.row, f.column))
