"""`alura-bot backtest`, `data check` and `data synth` as a user runs them: real subprocesses.

Until bot/cli.py registers the commands the same functions run through `python -m
bot.cli_backtest` (the standalone app holding exactly these commands).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_CANDLES

SHARED = SHARED_CANDLES
W1 = SHARED / "BTC-USDT_binance-futures_1h.csv"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _entry() -> list[str]:
    from bot.cli import app

    names = {c.name for c in app.registered_commands}
    return ["-m", "bot"] if "backtest" in names else ["-m", "bot.cli_backtest"]


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALURA_BOT_")},
        "COLUMNS": "140",
        "XDG_CONFIG_HOME": str(cwd / "xdg"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, *_entry(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


CANONICAL = ["-s", "ema_cross", "-p", "fast=10", "-p", "slow=30", "-p", "kind=sma"]


def test_synthetic_backtest_prints_every_figure(tmp_path: Path) -> None:
    out = cli("backtest", *CANONICAL, "--synthetic", "7", "--assets", "BTC,ETH", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for figure in (
        "trades",
        "win rate",
        "total return",
        "annualised return",
        "max drawdown",
        "drawdown duration",
        "Sharpe",
        "Sortino",
        "Calmar",
        "profit factor",
        "exposure",
        "avg trade",
        "avg holding",
        "fees paid",
        "buy & hold",
        "Per asset",
        "Per strategy",
    ):
        assert figure in out.stdout, figure
    assert "BTC" in out.stdout and "ETH" in out.stdout


def test_summary_on_an_80_column_terminal_cuts_no_figure(tmp_path: Path) -> None:
    args = ["-s", "ema_cross", "-s", "rsi_reversion", "--synthetic", "7"]
    args += ["--assets", "BTC,ETH,SOL,XRP,DOGE,AVAX", "--budget", "1000000"]
    out = cli("backtest", *args, cwd=tmp_path, env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    summary = json.loads(cli("backtest", *args, "--json", cwd=tmp_path).stdout)
    text = out.stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    figures = [f"{summary['final_equity']:,.2f}", f"{summary['trade']['net_pnl']:,.4f} USDC"]
    for group in ("by_asset", "by_strategy"):
        for name, g in summary[group].items():
            figures += [name, f"{g['trades']:,}", f"{g['net_pnl']:,.4f}", f"{g['fees']:,.4f}"]
            figures += [f"{g['avg_trade']:,.4f}", f"{g['win_rate']:,.1f}"]
    figures += [f"{v:,.2f} %" for v in summary["buy_hold_by_asset"].values()]
    cut = [f for f in figures if re.search(rf"(?<!\S){re.escape(f)}(?!\S)", text) is None]
    assert not cut, cut
    assert "…" not in text


def test_a_backtest_summary_loads_no_rich(tmp_path: Path) -> None:
    """Start-up is most of a one-year backtest: rich (~30 ms to import and render) stays out."""
    code = (
        "import sys\n"
        "sys.argv = ['alura-bot', *sys.argv[1:]]\n"
        "from bot.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "backtest", *CANONICAL, "--synthetic", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Per strategy" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_a_backtest_run_in_process_leaves_the_garbage_collector_alone(tmp_path: Path) -> None:
    """Only the `alura-bot backtest` process turns the collector off for its start-up."""
    import gc

    from typer.testing import CliRunner

    from bot.cli import app

    frozen = gc.get_freeze_count()
    out = CliRunner().invoke(app, ["backtest", *CANONICAL, "--synthetic", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_json_summary_matches_the_engine(tmp_path: Path) -> None:
    out = cli("backtest", *CANONICAL, "--synthetic", "3", "--no-reentry", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["assets"] == ["BTC", "ETH", "SOL"]
    assert summary["trade"]["trades"] > 50
    per_asset = sum(g["trades"] for g in summary["by_asset"].values())
    assert per_asset == summary["trade"]["trades"]
    assert summary["final_equity"] == pytest.approx(
        summary["balance"] + summary["trade"]["net_pnl"], abs=1e-6
    )


def test_report_files(tmp_path: Path) -> None:
    report = tmp_path / "rep"
    out = cli(
        "backtest",
        *CANONICAL,
        "--synthetic",
        "5",
        "--assets",
        "BTC",
        "--report",
        str(report),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert {p.name for p in report.iterdir()} >= {
        "trades.csv",
        "equity.csv",
        "summary.json",
        "report.html",
    }
    summary = json.loads((report / "summary.json").read_text())
    trades = (report / "trades.csv").read_text().splitlines()
    assert len(trades) - 1 == summary["trade"]["trades"]
    net = sum(float(line.split(",")[14]) for line in trades[1:])
    assert net == pytest.approx(summary["trade"]["net_pnl"], abs=1e-6)
    equity = (report / "equity.csv").read_text().splitlines()
    assert equity[0] == "time,equity,drawdown_pct,buy_hold_equity"
    assert float(equity[-1].split(",")[1]) == pytest.approx(summary["final_equity"])
    page = (report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from anywhere
    assert page.count("data:image/png;base64,") >= 3


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_opens_in_a_real_browser_with_its_plots(tmp_path: Path) -> None:
    report = tmp_path / "rep"
    out = cli(
        "backtest",
        *CANONICAL,
        "--synthetic",
        "5",
        "--assets",
        "BTC,ETH",
        "--report",
        str(report),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    url = (report / "report.html").as_uri()
    base = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the page's own script counts the plots that decoded: equity, buy & hold or not,
    # drawdown, one price chart per asset
    assert 'data-plots="' in dom.stdout
    shown, total = dom.stdout.split('data-plots="', 1)[1].split('"', 1)[0].split("/")
    assert shown == total and int(total) >= 4
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, "--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1200
    # a rendered report, not a blank page: many distinct colours (text, plots, markers)
    flat = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(flat[::7], axis=0)) > 200


@pytest.mark.skipif(not W1.exists(), reason=f"shared candle data not found at {W1}")
def test_w1_canonical_workload_has_the_peers_654_trades(tmp_path: Path) -> None:
    out = cli(
        "backtest",
        *CANONICAL,
        "--data",
        str(W1),
        "--no-reentry",
        "--cooldown",
        "0",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["trade"]["trades"] == 654


# -- input errors: one line naming the file and the row, exit 2 ---------------------------------

HEADER = "timestamp,open,high,low,close,volume\n"


def _csv(tmp_path: Path, rows: list[str], name: str = "BTC-USDC_test_1h.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def _good_rows(n: int = 60) -> list[str]:
    t0 = 1_704_067_200_000
    return [f"{t0 + i * 3_600_000},100,101,99,100.5,1" for i in range(n)]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: [*r[:5], r[6], r[5], *r[7:]], "line 8: timestamp"),  # unsorted
        (lambda r: [*r[:5], r[4], *r[5:]], "line 7: duplicate timestamp"),
        (lambda r: [*r[:3], r[3].replace("99,", "nan,"), *r[4:]], "line 5: low"),
        (lambda r: [*r[:9], r[9].replace(",101,99,", ",98,99,"), *r[10:]], "line 11: high"),
        (lambda r: [*r[:2], r[2].replace(",100,", ",-100,", 1), *r[3:]], "line 4: open"),
    ],
)
def test_bad_candles_exit_2_naming_file_and_line(tmp_path: Path, mutate, expected: str) -> None:
    path = _csv(tmp_path, mutate(_good_rows()))
    out = cli("backtest", *CANONICAL, "--data", str(path), cwd=tmp_path)
    assert out.returncode == 2
    assert str(path) in out.stderr and expected in out.stderr
    assert "Traceback" not in out.stderr
    check = cli("data", "check", str(path), cwd=tmp_path)
    assert check.returncode == 2 and expected in check.stderr


def test_gaps_are_reported_and_tolerated_unless_refused(tmp_path: Path) -> None:
    rows = _good_rows()
    path = _csv(tmp_path, rows[:20] + rows[23:])
    ok = cli("backtest", *CANONICAL, "--data", str(path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "1 gaps, 3 missing candles" in ok.stdout
    refused = cli("backtest", *CANONICAL, "--data", str(path), "--no-gaps", cwd=tmp_path)
    assert refused.returncode == 2 and "line 22: gap: 3 missing 1h candles" in refused.stderr
    check = cli("data", "check", str(path), cwd=tmp_path)
    assert check.returncode == 0 and "gaps  1 (3 missing candles" in check.stdout


def _synth(tmp_path: Path, name: str) -> Path:
    out = cli(
        "data", "synth", "--out", str(tmp_path / name), "--seed", "4", "--days", "60",
        "--assets", "BTC,DOGE", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return tmp_path / name


def test_a_directory_of_parquet_files_backtests_like_the_same_csv_files(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="parquet candles need the optional pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from bot.market.data import COLUMNS, load_csv

    csv_dir = _synth(tmp_path, "csv")
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    for path in csv_dir.iterdir():
        c = load_csv(path)
        table = pa.table(
            dict(zip(COLUMNS, (c.ts, c.open, c.high, c.low, c.close, c.volume), strict=True))
        )
        pq.write_table(table, pq_dir / path.with_suffix(".parquet").name)
    runs = [
        cli("backtest", *CANONICAL, "--data", str(d), "--json", cwd=tmp_path)
        for d in (csv_dir, pq_dir)
    ]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    from_csv, from_parquet = (json.loads(r.stdout) for r in runs)
    assert from_parquet["assets"] == ["BTC", "DOGE"]
    assert from_parquet["trade"]["trades"] > 0
    assert from_parquet["trade"] == from_csv["trade"]
    assert from_parquet["final_equity"] == from_csv["final_equity"]


def test_a_parquet_directory_without_pyarrow_says_how_to_install_it(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "pyarrow"
    shadow.mkdir(parents=True)  # an importable pyarrow that is not there, as on a bare install
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n"
    )
    data = tmp_path / "pq"
    data.mkdir()
    (data / "BTC-USDC_x_1h.parquet").write_bytes(b"PAR1")
    path = os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])
    out = cli("backtest", *CANONICAL, "--data", str(data), cwd=tmp_path, env={"PYTHONPATH": path})
    assert out.returncode == 2, out.stdout
    assert "needs pyarrow" in out.stderr and "pip install pyarrow" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_directory_with_one_symbol_in_two_formats_is_refused(tmp_path: Path) -> None:
    data = _synth(tmp_path, "m")
    (data / "BTC-USDC_synthetic_1h.parquet").write_bytes(b"PAR1")
    out = cli("backtest", *CANONICAL, "--data", str(data), cwd=tmp_path)
    assert out.returncode == 2
    assert "BTC-USDC_synthetic_1h.csv and BTC-USDC_synthetic_1h.parquet" in out.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-s", "no_such_strategy", "--synthetic", "1"], "unknown strategy 'no_such_strategy'"),
        (["-s", "ema_cross", "-p", "fast=40", "-p", "slow=30", "--synthetic", "1"], "fast (40)"),
        (["-s", "ema_cross", "-p", "fats=4", "--synthetic", "1"], "fats"),
        (["-s", "position_guard", "--synthetic", "1"], "position manager"),
        (["-s", "ema_cross"], "give --data FILE_OR_DIR or --synthetic SEED"),
        (["-s", "ema_cross", "--data", "/nonexistent/x.csv"], "/nonexistent/x.csv"),
        (["-s", "ema_cross", "--synthetic", "1", "--from", "soon"], "--from: 'soon'"),
        (["-s", "ema_cross", "--synthetic", "1", "--fees", "lots"], "--fees"),
        (["-s", "ema_cross", "--synthetic", "1", "--fees", "5%"], "fees.taker"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    out = cli("backtest", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert expected in out.stderr
    assert "Traceback" not in out.stderr


def test_data_synth_writes_files_that_check_clean_and_backtest(tmp_path: Path) -> None:
    out = cli(
        "data",
        "synth",
        "--out",
        str(tmp_path / "m"),
        "--seed",
        "4",
        "--days",
        "60",
        "--assets",
        "BTC,DOGE",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "m").iterdir())
    assert [f.name for f in files] == ["BTC-USDC_synthetic_1h.csv", "DOGE-USDC_synthetic_1h.csv"]
    check = cli("data", "check", *map(str, files), cwd=tmp_path)
    assert check.returncode == 0 and "1440 candles" in check.stdout
    bt = cli("backtest", *CANONICAL, "--data", str(tmp_path / "m"), "--json", cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    assert json.loads(bt.stdout)["assets"] == ["BTC", "DOGE"]
    again = cli(
        "data",
        "synth",
        "--out",
        str(tmp_path / "n"),
        "--seed",
        "4",
        "--days",
        "60",
        "--assets",
        "BTC,DOGE",
        cwd=tmp_path,
    )
    assert again.returncode == 0
    assert (tmp_path / "n" / files[0].name).read_bytes() == files[0].read_bytes()


PEEKING_STRATEGY = """
import numpy as np
from strategies.base import Signals, Strategy, StrategyParams


class TomorrowParams(StrategyParams):
    pass


class Tomorrow(Strategy[TomorrowParams]):
    name = "tomorrow"
    Params = TomorrowParams

    @property
    def warmup(self):
        return 2

    def indicators(self, candles):
        return {"next_close": np.append(np.asarray(candles.close)[1:], np.nan)}

    def signals(self, candles, columns):
        with np.errstate(invalid="ignore"):
            up = columns["next_close"] > candles.close
        return Signals.long_only(up, ~up)
"""


def test_check_lookahead_passes_a_shipped_strategy(tmp_path: Path) -> None:
    out = cli("backtest", *CANONICAL, "--synthetic", "2", "--check-lookahead", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "look-ahead check passed: ema_cross on BTC, ETH, SOL" in out.stdout


def test_check_lookahead_stops_a_strategy_that_reads_tomorrow(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "tomorrow.py").write_text(PEEKING_STRATEGY)
    common = ["-s", "tomorrow", "--strategies-dir", str(tmp_path / "mine"), "--synthetic", "2"]
    plain = cli("backtest", *common, "--json", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr  # without the check it "works" (too well)
    assert json.loads(plain.stdout)["trade"]["win_rate"] > 60
    out = cli("backtest", *common, "--check-lookahead", cwd=tmp_path)
    assert out.returncode == 1
    assert "look-ahead: tomorrow on BTC: indicator next_close at row" in out.stderr
    assert "reads later candles" in out.stderr


def test_sweep_prints_in_and_out_of_sample_and_saves_the_ranking(tmp_path: Path) -> None:
    out = cli(
        "sweep",
        "-s",
        "ema_cross",
        "-p",
        "kind=sma",
        "--grid",
        "fast=5:15:5,slow=20:40:10",
        "--synthetic",
        "3",
        "--walk-forward",
        "2",
        "--workers",
        "2",
        "--out",
        str(tmp_path / "sw"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "OOS sharpe" in out.stdout and "IS sharpe" in out.stdout
    assert "Walk-forward" in out.stdout and "9 parameter sets evaluated" in out.stdout
    ranking = (tmp_path / "sw" / "ranking.csv").read_text().splitlines()
    assert ranking[0].startswith("rank,fast,slow,train_sharpe")
    assert "test_sharpe" in ranking[0] and len(ranking) == 10
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert len(saved["folds"]) == 2 and saved["folds"][0]["chosen"] is not None


MY_CROSS = """
from strategies.ema_cross import EmaCross


class MyCross(EmaCross):
    name = "my_cross"
"""


def test_sweep_runs_a_strategy_from_a_directory_in_its_workers(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my_cross.py").write_text(MY_CROSS)
    args = ["--grid", "fast=5:10:5,slow=20:30:10", "--synthetic", "3", "--workers", "2"]
    out = cli(
        "sweep", "-s", "my_cross", "--strategies-dir", str(tmp_path / "mine"), *args, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "4 parameter sets evaluated" in out.stdout
    unknown = cli("sweep", "-s", "my_cross", *args, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown strategy 'my_cross'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grid", "fast=9:1:1"], "stop >= start"),
        (["--grid", "fast=5:9:1", "--metric", "luck"], "--metric"),
        (["--grid", "fast=5:9:1", "--ray-address", "auto"], "alura-bot[ray]"),
    ],
)
def test_sweep_input_errors_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    out = cli("sweep", "-s", "ema_cross", "--synthetic", "1", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert expected in out.stderr and "Traceback" not in out.stderr
