"""Candle loading, validation, resampling, CSV round trips and the synthetic market."""

from __future__ import annotations

import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.market import data
from bot.market.data import (
    CSV_HEADER,
    CandleDataError,
    Candles,
    check_candles,
    check_csv,
    interval_ms,
    interval_name,
    load_csv,
    load_dir,
    load_parquet,
    parse_candle_filename,
    resample,
    synthetic_candles,
    synthetic_market,
    write_csv,
)

from .conftest import MakeCandles, WriteCsv

T0 = 1_741_946_400_000  # 2025-03-14 10:00 UTC, a multiple of every interval up to 1h
STEP = 300_000  # 5m


def row(i: int, o: str = "100.0", h: str = "101.0", lo: str = "99.0", c: str = "100.5") -> str:
    return f"{T0 + i * STEP},{o},{h},{lo},{c},12.5"


GOOD_ROWS = [row(i) for i in range(6)]


def rows_with(index: int, text: str) -> list[str]:
    rows = list(GOOD_ROWS)
    rows[index] = text
    return rows


# --------------------------------------------------------------------------------------------
# every hard error names the file and the line (header = line 1, first candle = line 2)

BAD_FILES = [
    ("non-numeric", rows_with(2, f"{T0 + 2 * STEP},100.0,abc,99.0,100.5,1"), 4, "high 'abc'"),
    ("empty field", rows_with(1, f"{T0 + STEP},100.0,,99.0,100.5,1"), 3, "high is empty"),
    ("too many fields", rows_with(3, row(3) + ",7"), 5, "got 7"),
    ("too few fields", rows_with(0, f"{T0},100.0,101.0,99.0,100.5"), 2, "got 5"),
    ("nan", rows_with(2, row(2, c="nan")), 4, "close nan is not a finite number"),
    ("inf volume", rows_with(4, f"{T0 + 4 * STEP},100.0,101.0,99.0,100.5,inf"), 6, "volume inf"),
    ("high < low", rows_with(1, row(1, h="98.0")), 3, "high 98.0 < low 99.0"),
    ("open above high", rows_with(3, row(3, o="102.0")), 5, "open 102.0 is outside [low 99.0"),
    ("close below low", rows_with(5, row(5, c="98.5")), 7, "close 98.5 is outside"),
    ("zero price", rows_with(2, row(2, o="0", h="101.0", lo="0", c="1")), 4, "is not positive"),
    ("negative price", rows_with(2, row(2, lo="-1.0")), 4, "low -1.0 is not positive"),
    (
        "negative volume",
        rows_with(2, f"{T0 + 2 * STEP},100.0,101.0,99.0,100.5,-3"),
        4,
        "volume -3.0 is negative",
    ),
    ("duplicate ts", rows_with(3, row(2)), 5, "duplicate timestamp"),
    ("unsorted ts", rows_with(3, row(1)), 5, "before the previous one"),
    ("seconds", rows_with(0, f"{T0 // 1000},100.0,101.0,99.0,100.5,1"), 2, "(seconds?)"),
    ("fractional ts", rows_with(1, f"{T0 + STEP}.5,100,101,99,100,1"), 3, "whole number"),
    (
        "off-grid step",
        rows_with(2, f"{T0 + 2 * STEP + 60_000},1,1,1,1,1"),
        4,
        "multiple",
    ),
    ("blank line", [*GOOD_ROWS[:3], "", *GOOD_ROWS[3:]], 5, "empty line"),
]


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_rows_name_the_file_and_line(
    write_candle_csv: WriteCsv, rows: list[str], line: int, fragment: str
) -> None:
    path = write_candle_csv(rows)
    for load in (load_csv, check_csv):
        with pytest.raises(CandleDataError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path} line {line}: "), message
        assert path.name in message
        assert fragment in message
        assert info.value.line == line


def test_errors_survive_pickling(write_candle_csv: WriteCsv) -> None:
    path = write_candle_csv(rows_with(1, row(1, h="98.0")))
    with pytest.raises(CandleDataError) as info:
        load_csv(path)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
    assert (copy.source, copy.line, copy.unit) == (str(path), 3, "line")


def test_the_earliest_problem_is_reported(write_candle_csv: WriteCsv) -> None:
    rows = list(GOOD_ROWS)
    rows[4] = row(4, h="98.0")
    rows[2] = row(2, c="nan")
    with pytest.raises(CandleDataError, match=r"line 4: close nan"):
        load_csv(write_candle_csv(rows))


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("timestamp,open,high,low,close", "header is 'timestamp,open,high,low,close'"),
        ("date,open,high,low,close,volume", "expected exactly"),
        ("Timestamp,Open,High,Low,Close,Volume", "expected exactly"),
    ],
)
def test_header_must_match_exactly(write_candle_csv: WriteCsv, header: str, fragment: str) -> None:
    path = write_candle_csv(GOOD_ROWS, header=header)
    with pytest.raises(CandleDataError, match="line 1: ") as info:
        load_csv(path)
    assert fragment in str(info.value)
    assert path.name in str(info.value)


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty = tmp_path / "BTC-USDC_x_5m.csv"
    empty.write_text("")
    with pytest.raises(CandleDataError, match=r"BTC-USDC_x_5m\.csv line 1: file is empty"):
        load_csv(empty)
    header_only = tmp_path / "ETH-USDC_x_5m.csv"
    header_only.write_text(CSV_HEADER + "\n")
    with pytest.raises(CandleDataError, match=r"ETH-USDC_x_5m\.csv: has a header but no candles"):
        load_csv(header_only)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="candle file not found"):
        load_csv(tmp_path / "nope.csv")


# --------------------------------------------------------------------------------------------
# gaps


def gapped_rows() -> list[str]:
    # candles at steps 0,1,2 then 5 (2 missing) then 6, then 10 (3 missing); row 7 has no volume
    steps = [0, 1, 2, 5, 6, 10]
    rows = [row(s) for s in steps]
    rows[4] = f"{T0 + 6 * STEP},100.0,100.0,100.0,100.0,0"
    return rows


def test_gaps_are_reported_not_fatal_by_default(write_candle_csv: WriteCsv) -> None:
    path = write_candle_csv(gapped_rows())
    report = check_csv(path)
    assert report.rows == 6
    assert report.interval == "5m"
    assert report.symbol == "BTC"
    assert report.first_ts == T0
    assert report.last_ts == T0 + 10 * STEP
    assert report.gap_count == 2
    assert report.missing_steps == 5
    assert report.max_gap_steps == 3
    assert report.gaps == ((T0 + 2 * STEP, 2), (T0 + 6 * STEP, 3))
    assert report.zero_volume == 1
    assert "2 (5 missing candles, largest 3)" in report.describe()
    assert len(load_csv(path)) == 6
    assert check_csv(path, max_gaps=1).gaps == ((T0 + 2 * STEP, 2),)


def test_gaps_can_be_made_fatal(write_candle_csv: WriteCsv) -> None:
    path = write_candle_csv(gapped_rows())
    with pytest.raises(CandleDataError, match=r"line 5: gap: 2 missing 5m candles after"):
        load_csv(path, allow_gaps=False)
    assert len(load_csv(write_candle_csv(GOOD_ROWS), allow_gaps=False)) == 6


# --------------------------------------------------------------------------------------------
# parsing paths and inference


def test_fast_parser_matches_python_float(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    cols = [T0 + np.arange(n, dtype=np.int64) * STEP]
    texts: list[list[str]] = [[str(t) for t in cols[0]]]
    for _ in range(5):
        digits = rng.integers(1, 15, n)
        decimals = rng.integers(0, 9, n)
        values = [
            str(int(rng.integers(1, 10 ** int(d)))) for d in digits
        ]  # 1..14 significant digits
        texts.append(
            [
                (v[: len(v) - k] or "0") + "." + v[len(v) - k :] if 0 < k < len(v) else v
                for v, k in zip(values, decimals.tolist(), strict=True)
            ]
        )
    lines = [",".join(parts) for parts in zip(*texts, strict=True)]
    path = tmp_path / "X.csv"
    path.write_text(CSV_HEADER + "\n" + "\n".join(lines) + "\n")
    fast = data._parse_fast("\n".join(lines).encode() + b"\n")
    assert fast is not None
    expected = np.array([[float(x) for x in line.split(",")] for line in lines])
    assert np.array_equal(fast, expected)


def test_slow_paths_give_the_same_values(write_candle_csv: WriteCsv) -> None:
    plain = load_csv(write_candle_csv(GOOD_ROWS, name="A-B_x_5m.csv"))
    unusual = [
        f"{T0 + i * STEP},1.0e2,1.01E2,99.000000000000000,+100.5,12.5"
        for i in range(len(GOOD_ROWS))
    ]
    slow = load_csv(write_candle_csv(unusual, name="A-B_y_5m.csv"))
    assert np.array_equal(slow.open, plain.open)
    assert np.array_equal(slow.close, plain.close)
    assert np.array_equal(slow.ts, plain.ts)


def test_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "BTC-USDC_x_5m.csv"
    path.write_bytes(("\r\n".join([CSV_HEADER, *GOOD_ROWS])).encode())
    candles = load_csv(path)
    assert len(candles) == 6
    assert candles.close[0] == 100.5


def test_symbol_and_interval_inference(write_candle_csv: WriteCsv) -> None:
    named = load_csv(write_candle_csv(GOOD_ROWS, name="DOGE-USDT_binance-futures_5m.csv"))
    assert (named.symbol, named.interval, named.interval_ms) == ("DOGE", "5m", 300_000)
    anon = load_csv(write_candle_csv(gapped_rows(), name="mydata.csv"))
    assert (anon.symbol, anon.interval) == ("MYDATA", "5m")
    given = load_csv(write_candle_csv(GOOD_ROWS, name="x.csv"), symbol="ETH", interval="5m")
    assert (given.symbol, given.interval) == ("ETH", "5m")
    with pytest.raises(CandleDataError, match="file name says '5m'"):
        load_csv(write_candle_csv(GOOD_ROWS, name="BTC-USDC_hl_5m.csv"), interval="1m")
    with pytest.raises(CandleDataError, match="cannot infer the interval"):
        load_csv(write_candle_csv(GOOD_ROWS[:1], name="one.csv"))
    with pytest.raises(CandleDataError, match=r"line 3: timestamp step of 300000 ms .* 1h"):
        load_csv(write_candle_csv(GOOD_ROWS, name="y.csv"), interval="1h")


def test_filename_and_interval_helpers() -> None:
    parsed = parse_candle_filename("/x/BTC-USD_bitstamp-coinbase_1d.csv")
    assert parsed == ("BTC", "USD", "bitstamp-coinbase", "1d", "csv")
    assert parse_candle_filename("btc.csv") is None
    assert [interval_ms(i) for i in ("1m", "5m", "15m", "1h", "4h", "1d", "1w", "30s")] == [
        60_000,
        300_000,
        900_000,
        3_600_000,
        14_400_000,
        86_400_000,
        604_800_000,
        30_000,
    ]
    assert [interval_name(ms) for ms in (60_000, 3_600_000, 14_400_000, 86_400_000, 90_000)] == [
        "1m",
        "1h",
        "4h",
        "1d",
        "90s",
    ]
    with pytest.raises(ValueError, match="unknown interval"):
        interval_ms("5 minutes")


# --------------------------------------------------------------------------------------------
# round trip


def test_write_then_load_is_exact_and_byte_stable(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 2000
    # awkward floats: full-precision randoms, tiny and huge magnitudes, short decimals
    base = np.exp(rng.uniform(-20, 25, n))
    spread = base * rng.uniform(0, 0.01, n)
    low = base
    high = base + spread
    open_ = low + spread * rng.uniform(0, 1, n)
    close = low + spread * rng.uniform(0, 1, n)
    close[::7] = np.round(close[::7], 2)
    close[::7] = np.clip(close[::7], low[::7], high[::7])
    volume = rng.exponential(1.0, n) * 10.0 ** rng.integers(-8, 12, n)
    volume[::11] = 0.0
    ts = T0 + np.arange(n, dtype=np.int64) * 60_000
    candles = Candles("SOL", "1m", ts, open_, high, low, close, volume)
    check_candles(candles)
    first = tmp_path / "SOL-USDC_test_1m.csv"
    write_csv(candles, first)
    loaded = load_csv(first)
    assert loaded == candles
    second = tmp_path / "again.csv"
    write_csv(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_text().startswith(CSV_HEADER + "\n")
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------
# the Candles type


def test_candles_slicing_and_time_lookup(make_candles: MakeCandles) -> None:
    c = make_candles(n=10, interval="5m")
    assert len(c) == 10
    assert c.interval_ms == STEP
    assert c.end_ms == T0 + 10 * STEP
    assert len(c.tail(3)) == 3 and c.tail(3).ts[0] == c.ts[7]
    assert len(c.tail(0)) == 0 and len(c.tail(99)) == 10
    assert c.window(2, 5) == c[2:5]
    assert len(c.window(-2, None)) == 2
    # closed candles only: candle i closes at T0 + (i + 1) * STEP
    assert len(c.upto(T0 + 3 * STEP)) == 3
    assert len(c.upto(T0 + 3 * STEP - 1)) == 2
    assert len(c.upto(T0)) == 0
    assert c.index_at(T0 - 1) == -1
    assert c.index_at(T0) == 0
    assert c.index_at(T0 + 3 * STEP + 10) == 3
    assert c.index_at(T0 + 100 * STEP) == 9
    with pytest.raises(TypeError):
        c[3]  # type: ignore[index]
    with pytest.raises(TypeError, match="contiguous"):
        c[::2]
    assert "BTC 5m, 10 rows" in repr(c)
    assert Candles.empty("BTC", "1h").end_ms is None


def test_a_slice_is_read_only_shares_memory_and_equals_a_checked_build(
    make_candles: MakeCandles,
) -> None:
    c = make_candles(n=10)
    part = c[2:7]
    built = Candles(c.symbol, c.interval, c.ts[2:7], c.open[2:7], c.high[2:7], c.low[2:7],
                    c.close[2:7], c.volume[2:7])  # fmt: skip
    assert part == built and part.symbol == c.symbol and len(part) == 5
    for name in ("ts", "open", "high", "low", "close", "volume"):
        column = getattr(part, name)
        assert not column.flags.writeable and np.shares_memory(column, getattr(c, name))
    with pytest.raises(ValueError, match="read-only"):
        part.close[0] = 1.0


def test_candles_are_read_only_and_checked(make_candles: MakeCandles) -> None:
    c = make_candles(n=5)
    with pytest.raises(ValueError, match="read-only"):
        c.close[0] = 1.0
    source = np.arange(3, dtype=np.float64)
    Candles("X", "1m", np.arange(3), source, source, source, source, source)
    source[0] = 7.0  # the caller's own array stays writable
    with pytest.raises(ValueError, match="rows but ts has 3"):
        Candles("X", "1m", np.arange(3), source, source, source, source, source[:2])
    with pytest.raises(ValueError, match="unknown interval"):
        Candles("X", "7x", np.arange(3), source, source, source, source, source)
    assert c != make_candles(n=5, seed=1)
    assert c == make_candles(n=5)


def test_check_candles_names_the_index(make_candles: MakeCandles) -> None:
    c = make_candles(n=20)
    high = c.high.copy()
    high[7] = c.low[7] / 2
    bad = Candles(c.symbol, c.interval, c.ts, c.open, high, c.low, c.close, c.volume)
    with pytest.raises(CandleDataError, match=r"^BTC 5m candles index 7: high .* < low"):
        check_candles(bad)
    assert check_candles(c).rows == 20


# --------------------------------------------------------------------------------------------
# resampling


def naive_resample(c: Candles, step: int, include_partial: bool) -> list[tuple[float, ...]]:
    buckets: dict[int, list[int]] = {}
    out: list[tuple[float, ...]] = []
    for i, t in enumerate(c.ts.tolist()):
        buckets.setdefault(t - t % step, []).append(i)
    for b, idx in buckets.items():
        complete = int(c.ts[idx[-1]]) + c.interval_ms >= b + step
        if b == max(buckets) and not complete and not include_partial:
            continue
        out.append(
            (
                b,
                c.open[idx[0]],
                max(c.high[i] for i in idx),
                min(c.low[i] for i in idx),
                c.close[idx[-1]],
                math.fsum(c.volume[i] for i in idx),
            )
        )
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target", ["15m", "1h", "4h", "1d"])
@pytest.mark.parametrize("include_partial", [False, True])
def test_resample_matches_a_naive_loop(
    make_candles: MakeCandles, seed: int, target: str, include_partial: bool
) -> None:
    c = make_candles(seed=seed, n=1500, interval="5m", drop=0.2, start_ms=T0 + 7 * STEP)
    got = resample(c, target, include_partial=include_partial)
    want = naive_resample(c, interval_ms(target), include_partial)
    assert got.interval == target and got.symbol == c.symbol
    assert len(got) == len(want)
    w = np.array(want)
    assert np.array_equal(got.ts, w[:, 0].astype(np.int64))
    for j, name in enumerate(("open", "high", "low", "close"), start=1):
        assert np.array_equal(getattr(got, name), w[:, j]), name
    np.testing.assert_allclose(got.volume, w[:, 5], rtol=1e-12, atol=0)
    check_candles(got)


def test_resample_partial_last_bucket_and_errors(make_candles: MakeCandles) -> None:
    c = make_candles(n=13, interval="5m")  # 12 candles fill an hour, the 13th starts the next
    assert len(resample(c, "1h")) == 1
    assert len(resample(c, "1h", include_partial=True)) == 2
    assert len(resample(c[:12], "1h")) == 1
    assert len(resample(c[:11], "1h")) == 0
    assert resample(c, "5m") == c
    with pytest.raises(ValueError, match="must be a multiple"):
        resample(c, "7m")
    with pytest.raises(ValueError, match="must be a multiple"):
        resample(c, "1m")


# --------------------------------------------------------------------------------------------
# directories and parquet


def test_load_dir_picks_interval_and_exchange(tmp_path: Path, make_candles: MakeCandles) -> None:
    for sym, ex, iv in [
        ("BTC", "hyperliquid", "5m"),
        ("ETH", "hyperliquid", "5m"),
        ("ETH", "binance", "5m"),
        ("BTC", "hyperliquid", "1h"),
    ]:
        write_csv(
            make_candles(n=30, interval=iv, symbol=sym), tmp_path / f"{sym}-USDC_{ex}_{iv}.csv"
        )
    (tmp_path / "notes_5m.csv").write_text("not candles")
    loaded = load_dir(tmp_path, interval="5m", exchange="hyperliquid")
    assert list(loaded) == ["BTC", "ETH"]
    assert all(c.interval == "5m" for c in loaded.values())
    assert list(load_dir(tmp_path, interval="1h")) == ["BTC"]
    assert list(load_dir(tmp_path, interval="5m", symbols=["btc"])) == ["BTC"]
    with pytest.raises(ValueError, match=r"several exchanges .*binance, hyperliquid.*--exchange"):
        load_dir(tmp_path, interval="5m")
    with pytest.raises(FileNotFoundError, match=r"no 1h candle file for SOL, ETH .*have: BTC"):
        load_dir(tmp_path, interval="1h", symbols=["SOL", "ETH"])
    with pytest.raises(FileNotFoundError, match="candle directory not found"):
        load_dir(tmp_path / "missing", interval="5m")


def test_parquet_without_pyarrow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ModuleNotFoundError, match="pip install pyarrow"):
        load_parquet(tmp_path / "BTC-USDC_x_5m.parquet")


def test_parquet_round_trip(tmp_path: Path, make_candles: MakeCandles) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    c = make_candles(n=50)
    table = pa.table(
        {name: getattr(c, "ts" if name == "timestamp" else name) for name in data.COLUMNS}
    )
    path = tmp_path / "BTC-USDC_x_5m.parquet"
    pq.write_table(table, path)
    assert load_parquet(path) == c


# --------------------------------------------------------------------------------------------
# synthetic market

START = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
LEVELS = {"BTC": 60_000, "ETH": 3_000, "SOL": 150, "XRP": 0.6, "DOGE": 0.15, "AVAX": 35}


def test_synthetic_is_deterministic_to_the_byte(tmp_path: Path) -> None:
    def csv_bytes(seed: int, name: str) -> bytes:
        path = tmp_path / f"{name}.csv"
        write_csv(synthetic_market(seed, start_ms=START, n=3000)["ETH"], path)
        return path.read_bytes()

    assert csv_bytes(5, "a") == csv_bytes(5, "b")
    assert csv_bytes(5, "a") != csv_bytes(6, "c")


def test_synthetic_market_shape_and_consistency() -> None:
    market = synthetic_market(1, start_ms=START, n=20_000)
    assert list(market) == ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]
    for sym, c in market.items():
        assert (c.symbol, c.interval, len(c)) == (sym, "1m", 20_000)
        assert np.array_equal(np.diff(c.ts), np.full(19_999, 60_000))
        assert c.ts[0] == START
        report = check_candles(c, allow_gaps=False)  # sorted, finite, positive, OHLC-consistent
        assert report.zero_volume == 0
        assert np.all(c.high >= np.maximum(c.open, c.close))
        assert np.all(c.low <= np.minimum(c.open, c.close))
        assert np.array_equal(c.open[1:], c.close[:-1])
        assert np.all(c.volume > 0)
        # realistic levels: starts at the nominal level, stays within a sane band for 2 weeks
        assert c.open[0] == pytest.approx(LEVELS[sym], rel=1e-3)
        assert LEVELS[sym] / 1.6 < np.median(c.close) < LEVELS[sym] * 1.6
        # 5 significant figures
        for x in c.close[:500].tolist():
            assert len(repr(x).replace(".", "").lstrip("0").rstrip("0")) <= 5


def test_synthetic_returns_look_like_a_market() -> None:
    market = synthetic_market(2, start_ms=START, n=50_000)
    rets = {s: np.diff(np.log(c.close)) for s, c in market.items()}
    corr = np.corrcoef(rets["BTC"], rets["ETH"])[0, 1]
    assert 0.6 < corr < 0.9
    for s in ("SOL", "DOGE", "AVAX", "XRP"):
        assert 0.2 < np.corrcoef(rets["BTC"], rets[s])[0, 1] < 0.9
    r = rets["BTC"]
    kurtosis = np.mean((r - r.mean()) ** 4) / r.var() ** 2
    assert kurtosis > 4  # jumps and volatility regimes give fat tails
    hourly_vol = r[: r.size // 60 * 60].reshape(-1, 60).std(axis=1)
    assert np.percentile(hourly_vol, 90) > 1.5 * np.percentile(hourly_vol, 10)  # regimes
    btc = market["BTC"]
    assert np.corrcoef(btc.volume[1:], np.abs(r))[0, 1] > 0.3
    annual = r.std() * math.sqrt(365 * 1440)
    assert 0.2 < annual < 1.5


def test_synthetic_symbols_are_independent_streams() -> None:
    full = synthetic_market(3, start_ms=START, n=4000)
    alone = synthetic_candles(3, "sol", start_ms=START, n=4000)
    assert alone == full["SOL"]
    prefix = synthetic_market(3, start_ms=START, n=1500, symbols=["BTC", "LINK"])
    assert prefix["BTC"] == full["BTC"][:1500]
    assert prefix["LINK"].open[0] == 10.0
    hourly = synthetic_candles(3, "BTC", start_ms=START - START % 3_600_000, n=500, interval="1h")
    check_candles(hourly, allow_gaps=False)


def test_synthetic_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        synthetic_market(1, start_ms=START + 1, n=10)
    with pytest.raises(ValueError, match="n must be"):
        synthetic_market(1, start_ms=START, n=0)
    with pytest.raises(ValueError, match="seed"):
        synthetic_market(-1, start_ms=START, n=10)


# --------------------------------------------------------------------------------------------
# the team's real data


@pytest.mark.shared_data
def test_every_shared_5m_file_passes_validation(shared_candles_dir: Path) -> None:
    files = sorted(shared_candles_dir.glob("*_5m.csv"))
    assert files, f"no *_5m.csv in {shared_candles_dir}"
    for path in files:
        report = check_csv(path)
        parsed = parse_candle_filename(path)
        assert parsed is not None
        assert (report.symbol, report.interval) == (parsed.base, "5m")
        assert report.rows > 30_000
        candles = load_csv(path)
        assert len(candles) == report.rows
        assert np.all(candles.high >= candles.low)


@pytest.mark.shared_data
def test_shared_dir_loads_by_interval(shared_candles_dir: Path) -> None:
    market = load_dir(shared_candles_dir, interval="1h", exchange="hyperliquid")
    assert list(market) == ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]
    hourly = resample(market["BTC"], "4h")
    assert len(hourly) > 1000


def _outcome(candles: Candles, allow_gaps: bool) -> object:
    try:
        return check_candles(candles, allow_gaps=allow_gaps)
    except CandleDataError as exc:
        return str(exc)


def test_the_few_rows_shortcut_agrees_with_the_vectorised_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(11)
    defects = [
        ("close", np.nan),
        ("high", -1.0),
        ("low", 1e13),
        ("volume", -0.5),
        ("open", 1e9),
        ("ts", 0.5),
        ("ts", -60_000.0),
        ("ts", 120_000.0),
        ("ts", 30_000.0),
        ("ts", 1e15),
    ]
    cases = []
    for _ in range(300):
        n = int(rng.integers(1, 6))
        ts = 1_741_946_400_000 + 60_000 * np.arange(n, dtype=np.float64)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        cols = {"ts": ts, "open": close * 0.999, "high": close * 1.01, "low": close * 0.99,
                "close": close, "volume": rng.exponential(5, n)}  # fmt: skip
        if rng.random() < 0.7:
            name, value = defects[int(rng.integers(len(defects)))]
            i = int(rng.integers(n))
            cols[name] = cols[name].copy()
            cols[name][i] = cols[name][i] + value if name == "ts" else value
        cases.append(cols)

    def outcomes() -> list[object]:
        out = []
        for cols in cases:
            try:
                ohlcv = [cols[k] for k in ("open", "high", "low", "close", "volume")]
                candles = Candles("BTC", "1m", cols["ts"].astype(np.int64), *ohlcv)
            except (ValueError, OverflowError):
                continue
            out += [_outcome(candles, True), _outcome(candles, False)]
        return out

    fast = outcomes()
    monkeypatch.setattr(data, "_FEW_ROWS", 0)
    assert fast == outcomes()
    assert sum(isinstance(o, str) for o in fast) > 100  # defects were really there
