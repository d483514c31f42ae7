"""Shared fixtures: a known test key, settings, and a small in-process venue for client unit tests.

The unit-test venue is an `httpx.MockTransport` handler that checks real EIP-191 signatures with
eth-account and issues opaque tokens; the contract tests run the real simulator instead.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import SecretStr

from bot.journal import SessionRow
from bot.settings import Settings

# A throwaway key used only by the tests (never funded anywhere).
TEST_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TEST_ADDRESS = Account.from_key(TEST_KEY).address
REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared folder beside the checkout (API documents, real candles); ALURA_SHARED points at it
# from elsewhere (CI's clean clone lives in a temporary directory).
SHARED = Path(os.environ.get("ALURA_SHARED") or REPO_ROOT.parent / "shared")
SHARED_CANDLES = Path(os.environ.get("ALURA_SHARED_CANDLES") or SHARED / "data" / "candles")


def paper_session_row(sid: str, asset: str = "BTC", budget: str = "100.5") -> SessionRow:
    """An open paper-mode session as the journal holds it."""
    return SessionRow(
        id=sid,
        asset=asset,
        kind="quick",
        strategy="s",
        status="open",
        budget=Decimal(budget),
        opened_at=1000,
        closed_at=None,
        realized_pnl=None,
        fees=None,
        intent_id=None,
        mode="paper",
        raw={"a": 1},
    )


@pytest.fixture
def test_key() -> SecretStr:
    return SecretStr(TEST_KEY)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "private-key"
    path.write_text(TEST_KEY + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No ALURA_BOT_* or credential variables leak in from the machine; cwd has no config file."""
    import os

    for name in list(os.environ):
        if name.startswith("ALURA_BOT_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bot.settings.DOCKER_SECRET_PATH", tmp_path / "no-docker-secret")
    yield tmp_path


@pytest.fixture
def settings(clean_env: Path, key_file: Path) -> Settings:
    from bot.settings import load_settings

    return load_settings(None, base_url="http://venue.test", private_key_file=key_file)


@dataclass
class MockVenue:
    """Records every request; answers auth for real and everything else from `routes`."""

    token_ttl: float = 3600.0
    requests: list[httpx.Request] = field(default_factory=list)
    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict
    )
    nonces: dict[str, str] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    logins: int = 0

    def on(self, method: str, path: str, answer: Any, status: int = 200) -> None:
        def respond(_: httpx.Request) -> httpx.Response:
            return httpx.Response(status, json=answer)

        self.routes[(method, path)] = answer if callable(answer) else respond

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        if key in self.routes:
            return self.routes[key](request)
        if key == ("POST", "/auth/evm/challenge"):
            address = json.loads(request.content)["address"]
            nonce = secrets.token_hex(8)
            self.nonces[address] = nonce
            message = f"Sign in to Alura\nAddress: {address}\nNonce: {nonce}"
            return httpx.Response(
                200, json={"address": address, "nonce": nonce, "message": message}
            )
        if key == ("POST", "/auth/evm/verify"):
            body = json.loads(request.content)
            nonce = self.nonces.pop(body["address"], None)
            if nonce is None:
                return httpx.Response(401, json={"message": "no challenge"})
            message = f"Sign in to Alura\nAddress: {body['address']}\nNonce: {nonce}"
            signer = Account.recover_message(
                encode_defunct(text=message), signature=body["signature"]
            )
            if signer != body["address"]:
                return httpx.Response(401, json={"message": "bad signature"})
            token = "tok-" + secrets.token_hex(16)
            self.valid_tokens.add(token)
            self.logins += 1
            return httpx.Response(
                200,
                json={
                    "ok": True,
                    "accessToken": token,
                    "tokenType": "Bearer",
                    "expiresIn": self.token_ttl,
                    "user": {"address": signer},
                },
            )
        return httpx.Response(
            404, json={"message": f"no route {request.method} {request.url.path}"}
        )

    def authed(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.valid_tokens

    def last(self, method: str, path: str) -> httpx.Request:
        for req in reversed(self.requests):
            if req.method == method and req.url.path == path:
                return req
        raise AssertionError(f"no {method} {path} was sent")


@pytest.fixture
def venue() -> MockVenue:
    return MockVenue()


class Sleeps:
    """An injectable sleep that records requested waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client_for(venue: MockVenue, sleeps: Sleeps, test_key: SecretStr) -> Callable[..., Any]:
    """Build an AluraClient wired to the mock venue with a recording sleep."""
    from bot.api.alura import AluraClient
    from bot.api.auth import WalletAuth
    from bot.api.transport import Transport
    from bot.settings import HttpSettings

    def make(
        *,
        hooks: list[Any] | None = None,
        clock: Callable[[], float] | None = None,
        http: HttpSettings | None = None,
        with_key: bool = True,
    ) -> AluraClient:
        transport = Transport(
            "http://venue.test",
            http or HttpSettings(rate_limit_per_s=10_000, rate_limit_burst=10_000),
            http_transport=httpx.MockTransport(venue.handler),
            hooks=hooks,
            sleep=sleeps,
        )
        auth = None
        if with_key:
            kw = {"clock": clock} if clock else {}
            auth = WalletAuth(test_key, transport, **kw)
        return AluraClient(transport, auth)

    return make


@pytest.fixture
def serve_asgi() -> Iterator[Callable[[Any], str]]:
    """Serve an ASGI app with real uvicorn on 127.0.0.1 (free port); returns its base URL."""
    import threading
    import time

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("server failed to start")
            time.sleep(0.005)
        servers.append((server, thread))
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def sim_feed() -> Any:
    """One synthetic market for the whole run (building it takes about a second)."""
    from bot.sim.market_feed import MarketFeed
    from bot.sim.server import DEFAULT_START, parse_start

    return MarketFeed.synthetic(7, parse_start(DEFAULT_START))


@pytest.fixture
def sim_server(sim_feed: Any, tmp_path: Path) -> Iterator[Any]:
    """The real simulator on loopback with a stepped clock (tests move time explicitly)."""
    from bot.sim.server import SimOptions, SimServer, build_simulator

    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    with SimServer(sim) as server:
        yield server


@pytest.fixture
async def sim_client(sim_server: Any, test_key: SecretStr) -> Any:
    """An AluraClient for the test wallet, talking to `sim_server` over HTTP."""
    from bot.api.alura import AluraClient
    from bot.api.auth import WalletAuth
    from bot.api.transport import Transport

    transport = Transport(sim_server.url)
    client = AluraClient(transport, WalletAuth(test_key, transport))
    yield client
    await client.aclose()


# -- daemon against the simulator ---------------------------------------------------------

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
        return {"last_close": candles.close}

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


import threading


class Stuck(Strategy[StrategyParams]):
    """Test strategy: hangs until its `gate` is set (a strategy stuck in a slow computation)."""

    name = "stuck"
    Params = StrategyParams
    gate = threading.Event()

    def indicators(self, candles):
        self.gate.wait(60)
        return {}

    def signals(self, candles, columns):
        return Signals.long_only(np.zeros(len(candles), bool), np.zeros(len(candles), bool))

    @property
    def warmup(self) -> int:
        return 1


from strategies.base import PositionManager
from pydantic import BaseModel


class NoParams(BaseModel):
    pass


class BrokenManager(PositionManager):
    """Test position manager: always raises."""

    name = "broken_manager"
    Params = NoParams

    def manage(self, state):
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
        engine: dict[str, Any] | None = None,
        http: dict[str, Any] | None = None,
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
            http={"rate_limit_per_s": 1000, "rate_limit_burst": 100, **(http or {})},
            engine={"lookback_candles": 200, **(engine or {})},
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
