"""freqtrade backtesting of the canonical workload, offline.

freqtrade loads the exchange's market list through ccxt at start; here that download is replaced
by a static list of spot markets for the pairs in the data, so nothing touches the network. The
first run converts the candle CSVs into freqtrade's data directory (feather) under WORKDIR and
writes the config and the strategy (minimal_roi 2 %, stoploss -1 %, exit on the cross down).

    python freqtrade_run.py WORKDIR FILE.csv [FILE.csv ...]
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from common import FEE, STAKE, report

STRATEGY = """
import freqtrade.vendor.qtpylib.indicators as qtpylib
from freqtrade.strategy import IStrategy


class SmaCross(IStrategy):
    INTERFACE_VERSION = 3
    minimal_roi = {"0": 0.02}
    stoploss = -0.01
    use_exit_signal = True
    exit_profit_only = False
    ignore_roi_if_entry_signal = False
    process_only_new_candles = True
    startup_candle_count = 30

    def populate_indicators(self, df, metadata):
        df["fast"] = df["close"].rolling(10).mean()
        df["slow"] = df["close"].rolling(30).mean()
        return df

    def populate_entry_trend(self, df, metadata):
        df.loc[qtpylib.crossed_above(df["fast"], df["slow"]), "enter_long"] = 1
        return df

    def populate_exit_trend(self, df, metadata):
        df.loc[qtpylib.crossed_below(df["fast"], df["slow"]), "exit_long"] = 1
        return df
"""


def pair_of(path: Path) -> tuple[str, str, str]:
    """(pair, stake currency, timeframe) from <BASE>-<QUOTE>_<exchange>_<tf>.csv."""
    base_quote, _, rest = path.stem.partition("_")
    base, quote = base_quote.split("-")
    return f"{base}/{quote}", quote, rest.rsplit("_", 1)[1]


def static_markets(pairs: list[str]) -> list[dict]:
    out = []
    for pair in pairs:
        base, quote = pair.split("/")
        out.append(
            {
                "id": f"{base}{quote}",
                "symbol": pair,
                "base": base,
                "quote": quote,
                "baseId": base,
                "quoteId": quote,
                "settle": None,
                "settleId": None,
                "type": "spot",
                "spot": True,
                "margin": False,
                "swap": False,
                "future": False,
                "option": False,
                "contract": False,
                "linear": None,
                "inverse": None,
                "active": True,
                "taker": FEE,
                "maker": FEE,
                "contractSize": None,
                "precision": {"amount": 1e-8, "price": 1e-8},
                "limits": {
                    "amount": {"min": 1e-8, "max": None},
                    "price": {"min": 1e-8, "max": None},
                    "cost": {"min": 1.0, "max": None},
                    "leverage": {"min": None, "max": None},
                },
                "info": {},
            }
        )
    return out


def prepare(work: Path, files: list[Path]) -> Path:
    import pandas as pd
    from freqtrade.data.history import get_datahandler
    from freqtrade.enums import CandleType

    cfg = work / "config.json"
    if cfg.exists():
        return cfg
    data_dir = work / "user_data" / "data" / "binance"
    data_dir.mkdir(parents=True, exist_ok=True)
    (work / "user_data" / "strategies").mkdir(parents=True, exist_ok=True)
    (work / "user_data" / "strategies" / "sma_cross.py").write_text(STRATEGY)
    handler = get_datahandler(data_dir, "feather")
    pairs, stake, timeframe = [], "USDT", "1h"
    for f in files:
        pair, stake, timeframe = pair_of(f)
        df = pd.read_csv(f)
        df["date"] = pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True)
        df = df[["date", "open", "high", "low", "close", "volume"]]
        handler.ohlcv_store(pair, timeframe, df, CandleType.SPOT)
        pairs.append(pair)
    config = {
        "max_open_trades": len(pairs),
        "stake_currency": stake,
        "stake_amount": STAKE,
        "tradable_balance_ratio": 1.0,
        "dry_run": True,
        "dry_run_wallet": 1_000_000,
        "timeframe": timeframe,
        "trading_mode": "spot",
        "fee": FEE,
        "dataformat_ohlcv": "feather",
        "user_data_dir": str(work / "user_data"),
        "datadir": str(data_dir),
        "strategy": "SmaCross",
        "strategy_path": str(work / "user_data" / "strategies"),
        "exchange": {
            "name": "binance",
            "key": "",
            "secret": "",
            "pair_whitelist": pairs,
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "same", "use_order_book": False},
        "exit_pricing": {"price_side": "same", "use_order_book": False},
        "internals": {},
    }
    cfg.write_text(json.dumps(config, indent=1))
    return cfg


def offline(pairs: list[str]) -> None:
    """Serve the static market list instead of downloading it (ccxt's load_markets)."""
    from freqtrade.exchange.exchange import Exchange

    markets = static_markets(pairs)

    async def _api_reload_markets(self: Exchange, reload: bool = False) -> None:
        self._api_async.set_markets(markets)

    Exchange._api_reload_markets = _api_reload_markets  # type: ignore[method-assign]


def main() -> None:
    work = Path(sys.argv[1])
    files = [Path(f) for f in sys.argv[2:]]
    logging.disable(logging.WARNING)
    from freqtrade import __version__
    from freqtrade.commands.optimize_commands import setup_optimize_configuration
    from freqtrade.enums import RunMode
    from freqtrade.optimize.backtesting import Backtesting

    cfg = prepare(work, files)
    pairs = json.loads(cfg.read_text())["exchange"]["pair_whitelist"]
    offline(pairs)
    args = {
        "config": [str(cfg)],
        "strategy": "SmaCross",
        "export": "none",
        "fee": FEE,
        "cache": "none",
    }
    config = setup_optimize_configuration(args, RunMode.BACKTEST)
    t0 = time.perf_counter()
    bt = Backtesting(config)
    bt.start()
    elapsed = time.perf_counter() - t0
    res = bt.results["strategy"]["SmaCross"]
    report(int(res["total_trades"]), float(res["profit_total_abs"]), elapsed, version=__version__)


if __name__ == "__main__":
    main()
