"""Candles in, validated: CSV / parquet loading, checks, resampling and a synthetic market.

Every candle that reaches a strategy, the backtester or the simulator goes through here, so bad
input stops at the door with an error naming the file and the line. Timestamps are candle OPEN
times in integer milliseconds since the epoch (UTC); a candle with timestamp T covers
[T, T + interval).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bot.domain import DEFAULT_ASSETS, INTERVAL_SECONDS

__all__ = [
    "CSV_HEADER",
    "CandleDataError",
    "CandleFileName",
    "Candles",
    "CheckReport",
    "SyntheticMarket",
    "check_candles",
    "check_csv",
    "interval_ms",
    "interval_name",
    "load_csv",
    "load_dir",
    "load_parquet",
    "parse_candle_filename",
    "resample",
    "synthetic_candles",
    "synthetic_market",
    "write_csv",
]

CSV_HEADER = "timestamp,open,high,low,close,volume"
COLUMNS: tuple[str, ...] = tuple(CSV_HEADER.split(","))
DEFAULT_SYMBOLS: tuple[str, ...] = tuple(DEFAULT_ASSETS)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

_UNIT_MS: dict[str, int] = {
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_INTERVAL_RE = re.compile(r"^([1-9][0-9]*)([smhdw])$")
_FILENAME_RE = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)-(?P<quote>[A-Za-z0-9]+)_(?P<exchange>[A-Za-z0-9.-]+)"
    r"_(?P<interval>[1-9][0-9]*[smhdw])\.(?P<ext>csv|parquet)$"
)
# Timestamps outside [1e11, 1e14) ms (1973 .. 5138) are almost surely seconds or microseconds.
_TS_MIN = 10**11
_TS_MAX = 10**14
# No traded asset is priced anywhere near this; a 1e308 "price" is garbage that would overflow
# the indicators (squares, sums) into inf/NaN, not a market.
MAX_PRICE = 1e12
_POW10 = 10.0 ** np.arange(23)
_PARSE_CHUNK = 1 << 17
_SEP_PATTERN = np.array([44, 44, 44, 44, 44, 10], dtype=np.uint8)


def interval_ms(interval: str) -> int:
    """Length of an interval name ("1m", "5m", "1h", "4h", "1d", "15m", "1w", ...) in ms."""
    if interval in INTERVAL_SECONDS:
        return INTERVAL_SECONDS[interval] * 1000
    m = _INTERVAL_RE.match(interval)
    if m is None:
        known = ", ".join(INTERVAL_SECONDS)
        raise ValueError(f"unknown interval {interval!r}: use <n><s|m|h|d|w>, e.g. {known}")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def interval_name(ms: int) -> str:
    """Canonical name for an interval length, using the largest unit that divides it."""
    if ms <= 0:
        raise ValueError(f"interval must be positive, got {ms} ms")
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise ValueError(f"interval of {ms} ms is not a whole number of seconds")


def _fmt_ts(ts: int) -> str:
    try:
        when = datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(ts)
    return f"{ts} ({when} UTC)"


def _readonly_view(values: ArrayLike, dtype: type[np.generic], name: str) -> Any:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"candle column {name} must be 1-D, got shape {arr.shape}")
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False, repr=False)
class Candles:
    """One symbol's candles as column arrays (read-only views, so slices share memory safely).

    `ts` is the candle open time in ms since the epoch, UTC. Rows are expected sorted and
    validated (see `check_candles`); construction only checks shapes, to stay cheap.
    """

    symbol: str
    interval: str
    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        interval_ms(self.interval)
        set_ = object.__setattr__
        set_(self, "ts", _readonly_view(self.ts, np.int64, "ts"))
        for name in COLUMNS[1:]:
            set_(self, name, _readonly_view(getattr(self, name), np.float64, name))
        n = len(self.ts)
        for name in COLUMNS[1:]:
            rows = len(getattr(self, name))
            if rows != n:
                raise ValueError(f"candle column {name} has {rows} rows but ts has {n}")

    @classmethod
    def empty(cls, symbol: str, interval: str) -> Candles:
        z = np.empty(0, dtype=np.float64)
        return cls(symbol, interval, np.empty(0, dtype=np.int64), z, z, z, z, z)

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = f", {_fmt_ts(int(self.ts[0]))} .. {_fmt_ts(int(self.ts[-1]))}" if len(self) else ""
        return f"Candles({self.symbol} {self.interval}, {len(self)} rows{span})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candles):
            return NotImplemented
        return (
            self.symbol == other.symbol
            and self.interval == other.interval
            and all(np.array_equal(getattr(self, c), getattr(other, c)) for c in _FIELDS)
        )

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)

    @property
    def end_ms(self) -> int | None:
        """Close time of the last candle (open time + interval), None when empty."""
        return int(self.ts[-1]) + self.interval_ms if len(self) else None

    def __getitem__(self, key: slice) -> Candles:
        """A slice of read-only, equal-length columns is itself valid: built without checks or
        copies (the live engine and the backtest slice on every candle)."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("Candles only supports contiguous slices; use resample to thin out")
        sliced = object.__new__(Candles)
        set_ = object.__setattr__
        set_(sliced, "symbol", self.symbol)
        set_(sliced, "interval", self.interval)
        for name in _FIELDS:
            set_(sliced, name, getattr(self, name)[key])
        return sliced

    def window(self, start: int | None, stop: int | None) -> Candles:
        """Rows [start, stop) with Python slice semantics (negative indices count from the end)."""
        return self[start:stop]

    def tail(self, n: int) -> Candles:
        """The last `n` candles (all of them when n >= len, none when n <= 0)."""
        return self[len(self) - max(0, min(n, len(self))) :]

    def upto(self, ts_ms: int) -> Candles:
        """Candles CLOSED at `ts_ms` (open + interval <= ts_ms): all a live bot could have seen."""
        return self[: int(np.searchsorted(self.ts, ts_ms - self.interval_ms, side="right"))]

    def index_at(self, ts_ms: int) -> int:
        """Index of the last candle that opened at or before `ts_ms` (-1 if none).

        That candle is still forming when ts_ms < ts[i] + interval_ms (or ts_ms falls in a gap
        after it); callers that need closed candles only use `upto`.
        """
        return int(np.searchsorted(self.ts, ts_ms, side="right")) - 1


_FIELDS: tuple[str, ...] = ("ts", *COLUMNS[1:])


class CandleDataError(ValueError):
    """Bad candle data; the message names the source, the place and the problem.

    For CSV files the place is "line N": the 1-based line in the file, so the header is line 1
    and the first candle is line 2 (what an editor shows). For in-memory or parquet data it is
    "index N": the 0-based row index into the arrays.
    """

    def __init__(
        self, source: str, problem: str, line: int | None = None, unit: str = "line"
    ) -> None:
        # every argument kept in args, so the error survives pickling out of a sweep worker
        super().__init__(source, problem, line, unit)
        self.source = source
        self.problem = problem
        self.line = line
        self.unit = unit

    def __str__(self) -> str:
        where = f"{self.source} {self.unit} {self.line}" if self.line is not None else self.source
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class CheckReport:
    """What validation found in clean-enough data: size, span, gaps and zero-volume candles."""

    source: str
    symbol: str
    interval: str
    rows: int
    first_ts: int
    last_ts: int
    gap_count: int
    missing_steps: int
    max_gap_steps: int
    gaps: tuple[tuple[int, int], ...]
    zero_volume: int

    def describe(self) -> str:
        lines = [
            f"{self.source}: {self.symbol} {self.interval}, {self.rows} candles",
            f"  first {_fmt_ts(self.first_ts)}",
            f"  last  {_fmt_ts(self.last_ts)}",
            f"  gaps  {self.gap_count} ({self.missing_steps} missing candles, "
            f"largest {self.max_gap_steps})",
            f"  zero-volume candles {self.zero_volume}",
        ]
        lines += [f"    after {_fmt_ts(t)}: {k} missing" for t, k in self.gaps]
        if self.gap_count > len(self.gaps):
            lines.append(f"    ... {self.gap_count - len(self.gaps)} more gaps")
        return "\n".join(lines)


class CandleFileName(NamedTuple):
    base: str
    quote: str
    exchange: str
    interval: str
    ext: str


def parse_candle_filename(name: str | os.PathLike[str]) -> CandleFileName | None:
    """Split `<BASE>-<QUOTE>_<exchange>_<interval>.csv` (or .parquet); None if it does not fit."""
    m = _FILENAME_RE.match(Path(name).name)
    if m is None:
        return None
    return CandleFileName(
        m["base"].upper(), m["quote"].upper(), m["exchange"], m["interval"], m["ext"]
    )


# --------------------------------------------------------------------------------------------
# validation


def _first_true(mask: NDArray[np.bool_]) -> int | None:
    if mask.size == 0:
        return None
    i = int(np.argmax(mask))
    return i if mask[i] else None


_FEW_ROWS = 16


def _few_rows_ok(
    ts_f: FloatArray,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    v: FloatArray,
    step_ms: int,
    allow_gaps: bool,
) -> bool:
    """The checks of `_validate` in plain Python for a handful of rows (the daemon validates one
    new candle per asset per tick, where numpy's per-call cost dominates); True only when none
    of them would flag a row, so the vectorised pass (and its messages) runs otherwise."""
    prev: float | None = None
    for t, op, hi, low, cl, vol in zip(
        ts_f.tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist(), strict=True
    ):
        if not (
            math.isfinite(t)
            and math.isfinite(vol)
            and math.floor(t) == t
            and _TS_MIN <= t < _TS_MAX
        ):
            return False
        for price in (op, hi, low, cl):
            if not (math.isfinite(price) and 0 < price <= MAX_PRICE):
                return False
        if not (vol >= 0 and low <= hi and low <= op <= hi and low <= cl <= hi):
            return False
        if prev is not None:
            step = int(t) - int(prev)
            if step <= 0 or step % step_ms or (not allow_gaps and step != step_ms):
                return False
        prev = t
    return True


def _validate(
    source: str,
    symbol: str,
    interval: str,
    ts_f: FloatArray,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    v: FloatArray,
    *,
    allow_gaps: bool,
    max_gaps: int,
    first_line: int,
    unit: str,
) -> CheckReport:
    """Run every check vectorised and raise for the earliest offending row."""
    n = len(ts_f)
    if n == 0:
        raise CandleDataError(source, "no candles")
    step_ms = interval_ms(interval)
    if n <= _FEW_ROWS and _few_rows_ok(ts_f, o, h, lo, c, v, step_ms, allow_gaps):
        ts = ts_f.astype(np.int64)
        return _report(source, symbol, interval, ts, np.diff(ts), v, step_ms, max_gaps)
    cols = {"timestamp": ts_f, "open": o, "high": h, "low": lo, "close": c, "volume": v}
    found: list[tuple[int, Callable[[int], str]]] = []

    def flag(mask: NDArray[np.bool_], message: Callable[[int], str], shift: int = 0) -> None:
        i = _first_true(mask)
        if i is not None:
            found.append((i + shift, message))

    def num(col: FloatArray, i: int) -> str:
        return repr(float(col[i]))

    def is_bad(name: str, col: FloatArray, what: str) -> Callable[[int], str]:
        return lambda i: f"{name} {num(col, i)} {what}"

    def outside(name: str, col: FloatArray) -> Callable[[int], str]:
        return lambda i: f"{name} {num(col, i)} is outside [low {num(lo, i)}, high {num(h, i)}]"

    for name, col in cols.items():
        flag(~np.isfinite(col), is_bad(name, col, "is not a finite number"))
    finite_ts = np.isfinite(ts_f)
    flag(
        finite_ts & (np.floor(ts_f) != ts_f),
        is_bad("timestamp", ts_f, "is not a whole number of milliseconds"),
    )
    flag(
        finite_ts & (ts_f < _TS_MIN),
        is_bad("timestamp", ts_f, "is too small for milliseconds since the epoch (seconds?)"),
    )
    flag(
        finite_ts & (ts_f >= _TS_MAX),
        is_bad("timestamp", ts_f, "is too large for milliseconds since the epoch (microseconds?)"),
    )
    for name in ("open", "high", "low", "close"):
        flag(cols[name] <= 0, is_bad(name, cols[name], "is not positive"))
        flag(
            np.isfinite(cols[name]) & (cols[name] > MAX_PRICE),
            is_bad(name, cols[name], f"is implausibly large (above {MAX_PRICE:g})"),
        )
    flag(v < 0, is_bad("volume", v, "is negative"))
    flag(h < lo, lambda i: f"high {num(h, i)} < low {num(lo, i)}")
    for name in ("open", "close"):
        col = cols[name]
        flag((h >= lo) & ((col < lo) | (col > h)), outside(name, col))

    ts_ok = _first_true(~finite_ts) is None
    ts = ts_f.astype(np.int64) if ts_ok else np.zeros(n, dtype=np.int64)
    steps = np.diff(ts)
    if ts_ok:

        def prev_line(i: int) -> str:
            return f"{unit} {i - 1 + first_line}"

        flag(
            steps == 0,
            lambda i: f"duplicate timestamp {_fmt_ts(int(ts[i]))} (same as {prev_line(i)})",
            shift=1,
        )
        flag(
            steps < 0,
            lambda i: (
                f"timestamp {_fmt_ts(int(ts[i]))} is before the previous one "
                f"{_fmt_ts(int(ts[i - 1]))} ({prev_line(i)}): rows must be sorted ascending"
            ),
            shift=1,
        )
        flag(
            (steps > 0) & (steps % step_ms != 0),
            lambda i: (
                f"timestamp step of {int(ts[i] - ts[i - 1])} ms after "
                f"{_fmt_ts(int(ts[i - 1]))} is not a multiple of the {interval} interval "
                f"({step_ms} ms)"
            ),
            shift=1,
        )
        if not allow_gaps:
            flag(
                (steps > step_ms) & (steps % step_ms == 0),
                lambda i: (
                    f"gap: {int((ts[i] - ts[i - 1]) // step_ms) - 1} missing {interval} "
                    f"candles after {_fmt_ts(int(ts[i - 1]))} (allow_gaps=False)"
                ),
                shift=1,
            )

    if found:
        row, message = min(found, key=lambda f: f[0])
        raise CandleDataError(source, message(row), line=row + first_line, unit=unit)
    return _report(source, symbol, interval, ts, steps, v, step_ms, max_gaps)


def _report(
    source: str,
    symbol: str,
    interval: str,
    ts: IntArray,
    steps: IntArray,
    v: FloatArray,
    step_ms: int,
    max_gaps: int,
) -> CheckReport:
    gap_idx = np.flatnonzero(steps > step_ms)
    missing = steps[gap_idx] // step_ms - 1
    listed = gap_idx[:max_gaps]
    return CheckReport(
        source=source,
        symbol=symbol,
        interval=interval,
        rows=len(ts),
        first_ts=int(ts[0]),
        last_ts=int(ts[-1]),
        gap_count=int(gap_idx.size),
        missing_steps=int(missing.sum()),
        max_gap_steps=int(missing.max()) if missing.size else 0,
        gaps=tuple((int(ts[i]), int(k)) for i, k in zip(listed, missing[:max_gaps], strict=True)),
        zero_volume=int(np.count_nonzero(v == 0)),
    )


def check_candles(
    candles: Candles, *, allow_gaps: bool = True, max_gaps: int = 10, source: str | None = None
) -> CheckReport:
    """Validate in-memory candles (from parquet, an API or a generator); errors name the index."""
    return _validate(
        source or f"{candles.symbol} {candles.interval} candles",
        candles.symbol,
        candles.interval,
        candles.ts.astype(np.float64),
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
        allow_gaps=allow_gaps,
        max_gaps=max_gaps,
        first_line=0,
        unit="index",
    )


# --------------------------------------------------------------------------------------------
# CSV parsing: a vectorised fast path, numpy.loadtxt, then a row-by-row pass that names the line


def _parse_fast(body: bytes) -> FloatArray | None:
    """Parse plain decimal CSV in ~128 KiB slices (small temporaries stay in the heap's reuse
    range instead of being page-faulted in fresh on every call; ~2x faster)."""
    parts: list[FloatArray] = []
    start, n = 0, len(body)
    while start < n:
        stop = body.find(b"\n", min(start + _PARSE_CHUNK, n - 1)) + 1
        part = _parse_fast_chunk(body[start:stop])
        if part is None:
            return None
        parts.append(part)
        start = stop
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _parse_fast_chunk(body: bytes) -> FloatArray | None:
    """Parse plain decimal CSV (digits, one optional '.', <= 15 digits a field) in numpy.

    Each field's digits form an integer mantissa M (exact in float64 below 2**53); the value is
    M / 10**k with k the digits after the point: one correctly rounded division, so the result
    is bit-identical to strtod. Anything else (signs, exponents, nan, blanks, long fields)
    returns None and goes to the slower parsers.
    """
    a = np.frombuffer(body, dtype=np.uint8)
    d = a - np.uint8(48)
    is_digit = d < 10
    is_sep = (a == 44) | (a == 10)
    is_dot = a == 46
    if not np.all(is_digit | is_sep | is_dot):
        return None
    ends = np.flatnonzero(is_sep)
    n_fields = ends.size
    if n_fields == 0 or n_fields % 6:
        return None
    if not np.array_equal(
        a[ends].reshape(-1, 6), np.broadcast_to(_SEP_PATTERN, (n_fields // 6, 6))
    ):
        return None
    dots = np.flatnonzero(is_dot)
    dot_field = np.searchsorted(ends, dots)
    if dot_field.size > 1 and not np.all(np.diff(dot_field)):
        return None
    n_digits = np.diff(ends, prepend=-1) - 1
    n_digits[dot_field] -= 1
    if n_digits.min() < 1 or n_digits.max() > 15:
        return None
    frac = np.zeros(n_fields, dtype=np.intp)
    frac[dot_field] = ends[dot_field] - dots - 1
    digits_upto = np.cumsum(n_digits)
    digit_pos = np.flatnonzero(is_digit)
    exponent = np.repeat(digits_upto, n_digits) - np.arange(1, digit_pos.size + 1)
    weights = _POW10[exponent] * d[digit_pos]
    mantissa = np.add.reduceat(weights, digits_upto - n_digits)
    out: FloatArray = (mantissa / _POW10[frac]).reshape(-1, 6)
    return out


def _parse_rows(source: str, text: str) -> FloatArray:
    """Row-by-row parse: slow, but names the first bad line."""
    lines = text.split("\n")
    out = np.empty((len(lines), 6), dtype=np.float64)
    for i, line in enumerate(lines):
        lineno = i + 2
        if not line.strip():
            raise CandleDataError(source, "empty line", line=lineno)
        fields = line.split(",")
        if len(fields) != 6:
            raise CandleDataError(
                source,
                f"expected 6 comma-separated fields ({CSV_HEADER}), got {len(fields)}",
                line=lineno,
            )
        for j, field in enumerate(fields):
            if not field.strip():
                raise CandleDataError(source, f"{COLUMNS[j]} is empty", line=lineno)
            try:
                out[i, j] = float(field)
            except ValueError:
                raise CandleDataError(
                    source, f"{COLUMNS[j]} {field!r} is not a number", line=lineno
                ) from None
    return out


def _read_matrix(path: Path) -> FloatArray:
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"candle file not found: {path}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    header, _, body = raw.partition(b"\n")
    if header != CSV_HEADER.encode():
        got = header.decode("utf-8", errors="replace")[:80]
        problem = "file is empty" if not raw else f"header is {got!r}"
        raise CandleDataError(source, f"{problem}; expected exactly {CSV_HEADER!r}", line=1)
    body = body.rstrip(b"\n")
    if not body:
        raise CandleDataError(source, "has a header but no candles")
    fast = _parse_fast(body + b"\n")
    if fast is not None:
        return fast
    text = body.decode("utf-8", errors="replace")
    if "\n\n" not in text and "\ufffd" not in text:
        try:
            return np.loadtxt(
                text.split("\n"), delimiter=",", dtype=np.float64, comments=None, ndmin=2
            )
        except ValueError:
            pass
    return _parse_rows(source, text)


def _median_step_interval(source: str, ts: FloatArray) -> str:
    if len(ts) < 2:
        raise CandleDataError(source, "cannot infer the interval from one candle; pass interval=")
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise CandleDataError(source, "cannot infer the interval: timestamps never increase")
    return interval_name(int(np.median(steps)))


def _load_csv_checked(
    path: str | os.PathLike[str],
    *,
    symbol: str | None,
    interval: str | None,
    allow_gaps: bool,
    max_gaps: int = 10,
) -> tuple[Candles, CheckReport]:
    p = Path(path)
    source = str(p)
    parsed_name = parse_candle_filename(p)
    if interval is not None:
        interval_ms(interval)
        if parsed_name is not None and parsed_name.interval != interval:
            raise CandleDataError(
                source,
                f"interval {interval!r} given but the file name says {parsed_name.interval!r}",
            )
    m = _read_matrix(p)
    if interval is None:
        interval = parsed_name.interval if parsed_name else _median_step_interval(source, m[:, 0])
    if symbol is None:
        symbol = parsed_name.base if parsed_name else p.stem.upper()
    cols = [np.ascontiguousarray(m[:, j]) for j in range(6)]
    report = _validate(
        source,
        symbol,
        interval,
        *cols,
        allow_gaps=allow_gaps,
        max_gaps=max_gaps,
        first_line=2,
        unit="line",
    )
    candles = Candles(symbol, interval, cols[0].astype(np.int64), *cols[1:])
    return candles, report


def load_csv(
    path: str | os.PathLike[str],
    *,
    symbol: str | None = None,
    interval: str | None = None,
    allow_gaps: bool = True,
) -> Candles:
    """Load and validate a `timestamp,open,high,low,close,volume` file.

    Symbol and interval come from a `<BASE>-<QUOTE>_<exchange>_<interval>.csv` name when not
    given (the interval otherwise from the median timestamp step). Raises CandleDataError naming
    the line of the first problem; gaps are fine unless `allow_gaps=False`.
    """
    return _load_csv_checked(path, symbol=symbol, interval=interval, allow_gaps=allow_gaps)[0]


def check_csv(
    path: str | os.PathLike[str],
    *,
    interval: str | None = None,
    allow_gaps: bool = True,
    max_gaps: int = 10,
) -> CheckReport:
    """Validate a candle file and describe it (gaps, zero-volume candles); raises on hard errors."""
    return _load_csv_checked(
        path, symbol=None, interval=interval, allow_gaps=allow_gaps, max_gaps=max_gaps
    )[1]


def load_dir(
    directory: str | os.PathLike[str],
    *,
    interval: str,
    symbols: Iterable[str] | None = None,
    exchange: str | None = None,
    allow_gaps: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Candles]:
    """Load every `<BASE>-<QUOTE>_<exchange>_<interval>.csv` (or `.parquet`) of one interval,
    keyed by BASE.

    When several exchanges have a file for the same symbol, `exchange` must say which one; a
    requested symbol without a file is an error listing what is there. Parquet needs pyarrow
    (an optional extra), imported only when a parquet file is read. ``progress`` hears (file
    name, files loaded, files in all) before each file: a big directory takes seconds.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"candle directory not found: {root}")
    interval_ms(interval)
    by_symbol: dict[str, list[tuple[str, Path]]] = {}
    for p in sorted([*root.glob(f"*_{interval}.csv"), *root.glob(f"*_{interval}.parquet")]):
        parsed = parse_candle_filename(p)
        if parsed is None or parsed.interval != interval:
            continue
        if exchange is not None and parsed.exchange != exchange:
            continue
        by_symbol.setdefault(parsed.base, []).append((parsed.exchange, p))
    wanted = [s.upper() for s in symbols] if symbols is not None else _asset_order(by_symbol)
    missing = [s for s in wanted if s not in by_symbol]
    if missing:
        where = f" from exchange {exchange!r}" if exchange else ""
        have = ", ".join(_asset_order(by_symbol)) or "none"
        raise FileNotFoundError(
            f"no {interval} candle file{where} for {', '.join(missing)} in {root} (have: {have})"
        )
    out: dict[str, Candles] = {}
    for done, sym in enumerate(wanted):
        files = by_symbol[sym]
        exchanges = sorted({ex for ex, _ in files})
        if len(exchanges) > 1:
            raise ValueError(
                f"{sym} {interval} has files from several exchanges ({', '.join(exchanges)}) "
                f"in {root}; pick one (backtest: --exchange; sim: --csv-exchange)"
            )
        if len(files) > 1:
            raise ValueError(
                f"{sym} {interval} is in both {' and '.join(p.name for _, p in files)} in "
                f"{root}; keep one of them"
            )
        path = files[0][1]
        if progress is not None:
            progress(path.name, done, len(wanted))
        load = load_parquet if path.suffix == ".parquet" else load_csv
        out[sym] = load(path, symbol=sym, interval=interval, allow_gaps=allow_gaps)
    return out


def _asset_order(symbols: Iterable[str]) -> list[str]:
    return sorted(symbols, key=lambda s: (DEFAULT_ASSETS.get(s, len(DEFAULT_ASSETS)), s))


def load_parquet(
    path: str | os.PathLike[str],
    *,
    symbol: str | None = None,
    interval: str | None = None,
    allow_gaps: bool = True,
) -> Candles:
    """Load candles from parquet (needs the optional pyarrow, imported only here).

    Columns as in the CSV; a `date` column of an arrow timestamp type (freqtrade's layout) is
    accepted in place of `timestamp`. Errors name the 0-based row index.
    """
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "reading parquet candles needs pyarrow, which is not installed: pip install pyarrow"
        ) from exc
    p = Path(path)
    source = str(p)
    table = pq.read_table(p)
    names = list(table.column_names)
    ts_name = "timestamp" if "timestamp" in names else "date" if "date" in names else None
    absent = [c for c in COLUMNS[1:] if c not in names]
    if ts_name is None or absent:
        raise CandleDataError(
            source, f"needs columns {', '.join(COLUMNS)} (or date for timestamp); has {names}"
        )
    raw_ts = np.asarray(table.column(ts_name).to_numpy())
    if np.issubdtype(raw_ts.dtype, np.datetime64):
        raw_ts = raw_ts.astype("datetime64[ms]").astype(np.int64)
    ts_f = np.asarray(raw_ts, dtype=np.float64)
    cols = [np.asarray(table.column(c).to_numpy(), dtype=np.float64) for c in COLUMNS[1:]]
    parsed_name = parse_candle_filename(p)
    if interval is None:
        interval = parsed_name.interval if parsed_name else _median_step_interval(source, ts_f)
    if symbol is None:
        symbol = parsed_name.base if parsed_name else p.stem.upper()
    _validate(
        source,
        symbol,
        interval,
        ts_f,
        *cols,
        allow_gaps=allow_gaps,
        max_gaps=10,
        first_line=0,
        unit="index",
    )
    return Candles(symbol, interval, ts_f.astype(np.int64), *cols)


def write_csv(candles: Candles, path: str | os.PathLike[str]) -> None:
    """Write the exact CSV format; floats as repr (shortest round-trip), so reloading is exact.

    Written to a temporary file then renamed, so a reader never sees half a file.
    """
    p = Path(path)
    rows = zip(*(getattr(candles, c).tolist() for c in _FIELDS), strict=True)
    body = "".join([f"{t},{o!r},{h!r},{lo!r},{c!r},{v!r}\n" for t, o, h, lo, c, v in rows])
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(f"{CSV_HEADER}\n{body}", encoding="ascii", newline="\n")
    os.replace(tmp, p)


# --------------------------------------------------------------------------------------------
# resampling


def resample(candles: Candles, interval: str, *, include_partial: bool = False) -> Candles:
    """Aggregate to a coarser interval, buckets aligned to multiples of it since the epoch.

    open=first, high=max, low=min, close=last, volume=sum over the candles present (missing
    source candles just leave a bucket thinner). The last bucket is dropped unless its final
    source candle closes the bucket or `include_partial` is set: a forming bucket must not be
    mistaken for a closed candle. (1d buckets start at 00:00 UTC; 1w buckets on Thursdays.)
    """
    src = candles.interval_ms
    dst = interval_ms(interval)
    if dst < src or dst % src:
        raise ValueError(
            f"cannot resample {candles.interval} to {interval}: target must be a multiple"
        )
    name = interval_name(dst)
    if dst == src or len(candles) == 0:
        return Candles(
            candles.symbol,
            name,
            candles.ts,
            candles.open,
            candles.high,
            candles.low,
            candles.close,
            candles.volume,
        )
    bucket = candles.ts // dst * dst
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    last = np.concatenate((starts[1:], [len(candles)])) - 1
    if not include_partial and candles.ts[-1] + src < bucket[-1] + dst:
        starts, last = starts[:-1], last[:-1]
    if starts.size == 0:
        return Candles.empty(candles.symbol, name)
    stop = int(last[-1]) + 1
    return Candles(
        candles.symbol,
        name,
        bucket[starts],
        candles.open[starts],
        np.maximum.reduceat(candles.high[:stop], starts),
        np.minimum.reduceat(candles.low[:stop], starts),
        candles.close[last],
        np.add.reduceat(candles.volume[:stop], starts),
    )


# --------------------------------------------------------------------------------------------
# synthetic market


@dataclass(frozen=True)
class _Profile:
    price: float
    annual_vol: float
    market_share: float
    volume_per_minute: float
    size_decimals: int


# Start level, annualised volatility, share of variance from the common factor (BTC/ETH
# correlation = sqrt(0.85 * 0.70) ~ 0.77), volume scale and size decimals, matched roughly to
# Hyperliquid's 2025 candles (median volume per minute ~0.6x the scale).
_PROFILES: dict[str, _Profile] = {
    "BTC": _Profile(60_000.0, 0.45, 0.85, 18.0, 5),
    "ETH": _Profile(3_000.0, 0.65, 0.70, 400.0, 4),
    "SOL": _Profile(150.0, 0.80, 0.55, 2_500.0, 2),
    "XRP": _Profile(0.6, 0.80, 0.45, 30_000.0, 0),
    "DOGE": _Profile(0.15, 0.90, 0.50, 45_000.0, 0),
    "AVAX": _Profile(35.0, 0.85, 0.55, 200.0, 2),
}
_GENERIC_PROFILE = _Profile(10.0, 0.90, 0.50, 10_000.0, 1)
_DAY_MS = 86_400_000
_YEAR_MS = 365 * _DAY_MS
_PRICE_SIG_FIGS = 5
_MAX_PRICE_DECIMALS = 6  # Hyperliquid perps: at most 6 - szDecimals decimals
_CALM_DAYS, _VOLATILE_DAYS = 2.0, 1.0 / 3.0
_TREND_DAYS = 4.0
_TREND_SHARPE_SD = 2.5
_MARKET_JUMPS_PER_DAY, _ASSET_JUMPS_PER_DAY = 1.5, 1.0
_JUMP_SD_PER_VOL = 0.012
_BATCH = 64


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class _Regimes:
    """Regime path: states cycle in order, each lasting a geometric number of steps.

    Drawn in fixed batches, and the segment in progress carries over from one `take` to the
    next, so consecutive takes give exactly the path one take of their total length gives.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        mean_steps: Sequence[float],
        draw: Callable[[np.random.Generator, int], FloatArray],
    ) -> None:
        self._rng = rng
        self._probs = [min(1.0, 1.0 / max(m, 1.0)) for m in mean_steps]
        self._draw = draw
        self._lengths: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._values: FloatArray = np.empty(0, dtype=np.float64)

    def take(self, n: int) -> FloatArray:
        lengths = [self._lengths]
        values = [self._values]
        total = int(self._lengths.sum())
        while total < n:
            lens = np.stack(
                [self._rng.geometric(p, size=_BATCH) for p in self._probs], axis=1
            ).ravel()
            lengths.append(lens)
            values.append(self._draw(self._rng, _BATCH))
            total += int(lens.sum())
        all_lengths = np.concatenate(lengths)
        all_values = np.concatenate(values)
        out: FloatArray = np.repeat(all_values, all_lengths)[:n]
        ends = np.cumsum(all_lengths)
        k = int(np.searchsorted(ends, n, side="right"))
        rest = all_lengths[k:].copy()
        if rest.size:
            rest[0] = ends[k] - n
        self._lengths, self._values = rest, all_values[k:].copy()
        return out


def _vol_levels(rng: np.random.Generator, size: int) -> FloatArray:
    calm = rng.uniform(0.55, 0.9, size)
    volatile = rng.uniform(1.6, 2.6, size)
    out: FloatArray = np.stack([calm, volatile], axis=1).ravel()
    return out


def _trend_levels(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.normal(0.0, _TREND_SHARPE_SD, size)


def _jumps(when: np.random.Generator, size: np.random.Generator, n: int, p: float) -> FloatArray:
    hit = when.random(n) < min(p, 1.0)
    out = np.zeros(n, dtype=np.float64)
    out[hit] = size.standard_normal(int(np.count_nonzero(hit)))
    return out


def _round_sig(p: FloatArray, max_decimals: int) -> FloatArray:
    """Round to 5 significant figures and at most `max_decimals` (Hyperliquid's price rule)."""
    exponent = np.floor(np.log10(p))
    dec = np.minimum(_PRICE_SIG_FIGS - 1 - exponent, max_decimals).astype(np.int64)
    up = _POW10[np.clip(dec, 0, 22)]
    down = _POW10[np.clip(-dec, 0, 22)]
    out: FloatArray = np.where(dec >= 0, np.rint(p * up) / up, np.rint(p / down) * down)
    return out


def _symbol_key(symbol: str) -> int:
    return zlib.crc32(symbol.encode())


class _AssetStream:
    """One symbol's own streams and running state (cumulative return, last close)."""

    def __init__(self, seed: int, name: str, per_day: float) -> None:
        self.name = name
        self.prof = _PROFILES.get(name, _GENERIC_PROFILE)
        key = _symbol_key(name)

        def rng(k: int) -> np.random.Generator:
            return _stream(seed, 1, key, k)

        self._trend = _Regimes(rng(1), (_TREND_DAYS * per_day,), _trend_levels)
        self._noise = rng(2)
        self._jump_when, self._jump_size = rng(3), rng(4)
        self._reach_up, self._reach_down = rng(5), rng(7)
        self._volume = rng(6)
        self._jump_p = _ASSET_JUMPS_PER_DAY / per_day
        self._max_dec = _MAX_PRICE_DECIMALS - self.prof.size_decimals
        self._cum: float | None = None
        self._last_close = _round_sig(np.array([self.prof.price]), self._max_dec)

    def take(
        self,
        ts: IntArray,
        interval: str,
        dt_years: float,
        vol_mult: FloatArray,
        market_trend: FloatArray,
        market_z: FloatArray,
        market_jumps: FloatArray,
    ) -> Candles:
        n = len(ts)
        prof = self.prof
        w_m, w_i = math.sqrt(prof.market_share), math.sqrt(1.0 - prof.market_share)
        sigma = prof.annual_vol * math.sqrt(dt_years) * vol_mult
        trend = self._trend.take(n)
        noise = self._noise.standard_normal(n)
        jumps = _jumps(self._jump_when, self._jump_size, n, self._jump_p)
        drift = (prof.annual_vol * dt_years) * (w_m * market_trend + w_i * trend)
        shock = sigma * (w_m * market_z + w_i * noise)
        jump = (_JUMP_SD_PER_VOL * prof.annual_vol) * (w_m * market_jumps + w_i * jumps)
        ret = drift + shock + jump
        # accumulate is sequential, so starting from the carried sum adds exactly as one pass
        cum = np.cumsum(ret) if self._cum is None else np.cumsum(np.insert(ret, 0, self._cum))[1:]
        self._cum = float(cum[-1])
        close = _round_sig(prof.price * np.exp(cum), self._max_dec)
        open_ = np.concatenate((self._last_close, close[:-1]))
        self._last_close = close[-1:].copy()
        body_hi = np.maximum(open_, close)
        body_lo = np.minimum(open_, close)
        reach_up = self._reach_up.standard_exponential(n) * (0.3 * sigma)
        reach_down = self._reach_down.standard_exponential(n) * (0.3 * sigma)
        high = np.maximum(_round_sig(body_hi * np.exp(reach_up), self._max_dec), body_hi)
        low = np.minimum(_round_sig(body_lo * np.exp(-reach_down), self._max_dec), body_lo)
        activity = np.abs(shock + jump) / sigma
        lot = 10.0**-prof.size_decimals
        step_ms = interval_ms(interval)
        volume = (prof.volume_per_minute * step_ms / 60_000) * vol_mult * (0.4 + 0.75 * activity)
        volume = volume * np.exp(0.6 * self._volume.standard_normal(n) - 0.18)
        volume = np.maximum(np.round(volume, prof.size_decimals), lot)
        return Candles(self.name, interval, ts, open_, high, low, close, volume)


class SyntheticMarket:
    """`synthetic_market` generated piece by piece, for a market that runs as long as a clock.

    Every stream and running value carries over between `take`s, so consecutive pieces are
    exactly the candles one call with their total n gives, and a piece costs the same however
    far the market has already run.
    """

    def __init__(
        self,
        seed: int,
        *,
        start_ms: int,
        interval: str = "1m",
        symbols: Sequence[str] | None = None,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.interval = interval
        self.step_ms = interval_ms(interval)
        if start_ms % self.step_ms:
            raise ValueError(f"start_ms {start_ms} is not a multiple of the {interval} interval")
        self.next_ms = start_ms
        names = [s.upper() for s in (DEFAULT_SYMBOLS if symbols is None else symbols)]
        per_day = _DAY_MS / self.step_ms
        self._dt_years = self.step_ms / _YEAR_MS
        self._vol = _Regimes(
            _stream(seed, 0, 1), (_CALM_DAYS * per_day, _VOLATILE_DAYS * per_day), _vol_levels
        )
        self._trend = _Regimes(_stream(seed, 0, 2), (_TREND_DAYS * per_day,), _trend_levels)
        self._z = _stream(seed, 0, 3)
        self._jump_when, self._jump_size = _stream(seed, 0, 4), _stream(seed, 0, 5)
        self._jump_p = _MARKET_JUMPS_PER_DAY / per_day
        self._assets = [_AssetStream(seed, name, per_day) for name in names]

    def take(self, n: int) -> dict[str, Candles]:
        """The next `n` candles of every symbol, continuing the previous take."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        vol_mult = self._vol.take(n)
        market_trend = self._trend.take(n)
        market_z = self._z.standard_normal(n)
        market_jumps = _jumps(self._jump_when, self._jump_size, n, self._jump_p)
        ts = self.next_ms + np.arange(n, dtype=np.int64) * self.step_ms
        self.next_ms += n * self.step_ms
        return {
            a.name: a.take(
                ts, self.interval, self._dt_years, vol_mult, market_trend, market_z, market_jumps
            )
            for a in self._assets
        }


def synthetic_market(
    seed: int,
    *,
    start_ms: int,
    n: int,
    interval: str = "1m",
    symbols: Sequence[str] | None = None,
) -> dict[str, Candles]:
    """A deterministic, realistic-looking multi-asset market for demos, tests and the simulator.

    Log returns = common factor (with trend regimes, jumps) + per-asset noise, both scaled by a
    shared Markov-switching calm/volatile regime; each asset draws from its own seeded stream,
    so a symbol's candles do not depend on which other symbols are asked for, and a longer
    series starts with exactly the shorter one. Open = previous close; high/low extend beyond
    the body; prices have 5 significant figures; volume grows with |return| and volatility.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return SyntheticMarket(seed, start_ms=start_ms, interval=interval, symbols=symbols).take(n)


def synthetic_candles(
    seed: int, symbol: str, *, start_ms: int, n: int, interval: str = "1m"
) -> Candles:
    """One symbol of `synthetic_market` (the same candles it would give for that symbol)."""
    return synthetic_market(seed, start_ms=start_ms, n=n, interval=interval, symbols=[symbol])[
        symbol.upper()
    ]
