"""Daemon-against-simulator fixtures: a stepped market clock, a real venue on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

ALWAYS = '''
import numpy as np
from strategies.base import Signals, Strategy, StrategyParams


class AlwaysParams(StrategyParams):
    exit_every: int = 0


class Always(Strategy[AlwaysParams]):
    """Test strategy: wants a long session on every candle; exits every Nth candle."""

    name = "always_long"
    Params = AlwaysParams

    @property
    def warmup(self) -> int:
        return 5

    def indicators(self, candles):
        return {}

    def signals(self, candles, columns):
        n = len(candles)
        enter = np.ones(n, dtype=bool)
        exit_ = np.zeros(n, dtype=bool)
        if self.params.exit_every:
            exit_ = (candles.ts // candles.interval_ms) % self.params.exit_every == 0
        return Signals.long_only(enter, exit_)


class Broken(Strategy[StrategyParams]):
    """Test strategy: always raises."""

    name = "broken"
    Params = StrategyParams

    def indicators(self, candles):
        raise RuntimeError("boom")

    def signals(self, candles, columns):
        raise RuntimeError("boom")
'''


@pytest.fixture
def strategies_dir(tmp_path: Path) -> Path:
    d = tmp_path / "user_strategies"
    d.mkdir()
    (d / "test_strategies.py").write_text(ALWAYS)
    return d


@pytest.fixture
async def make_daemon(
    sim_server: Any, tmp_path: Path, strategies_dir: Path, test_key: SecretStr
) -> AsyncIterator[Callable[..., Any]]:
    """Build (not start) daemons against the simulator; the test drives ticks itself."""
    from bot.engine.daemon import Daemon
    from bot.metrics import Metrics
    from bot.settings import Settings

    made: list[Any] = []

    async def make(
        *,
        strategies: list[dict[str, Any]] | None = None,
        live: bool = True,
        risk: dict[str, Any] | None = None,
        journal: Path | None = None,
        positions_wallet: str | None = None,
    ) -> Any:
        extra: dict[str, Any] = {}
        if positions_wallet:
            extra["positions"] = {"base_url": sim_server.url, "wallet_address": positions_wallet}
        settings = Settings(
            base_url=sim_server.url,
            mode="live" if live else "paper",
            journal_path=journal or tmp_path / "journal.sqlite",
            strategies_dir=strategies_dir,
            strategies=strategies
            or [{"name": "always_long", "assets": ["BTC", "ETH"], "params": {"interval": "1h"}}],
            risk={"cooldown_s": 0, **(risk or {})},
            http={"rate_limit_per_s": 1000, "rate_limit_burst": 100},
            engine={"lookback_candles": 200},
            **extra,
        )
        daemon = Daemon(
            settings, key=test_key, live=live, clock=sim_server.sim.clock, metrics=Metrics()
        )
        daemon.build()
        await daemon._reconcile_unlocked("test start-up")
        made.append(daemon)
        return daemon

    yield make
    for d in made:
        if d.parts is not None:
            await d.parts.client.aclose()
            d.parts.journal.close()
