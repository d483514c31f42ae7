"""PositionsClient against the real positions simulator served by uvicorn on 127.0.0.1.

Every endpoint on both layers, every documented error, the proxy's 404 -> empty mapping, the
backend's 404, exact big integers, and page walks while the list changes between pages. Only the
"lying server" cases use an in-process mock: the simulator never lies.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from bot.api.errors import (
    BadJson,
    BadResponse,
    ClientValidationError,
    Conflict,
    InvalidArgs,
    InvalidNumeric,
    MissingFields,
    NotFound,
    OutcomeUnknown,
    PositionIdRequired,
    ServerError,
    UnsupportedAction,
    ValidationFailed,
    WalletRequired,
)
from bot.api.positions import (
    PaginationError,
    Position,
    PositionsClient,
    PositionStatus,
    Units,
    expected_payout,
)
from bot.api.transport import Transport, error_for
from bot.settings import HttpSettings
from bot.sim import positions_api
from bot.sim.clock import SimClock
from bot.sim.positions_api import positions_routes
from bot.sim.positions_venue import (
    MarketStatus,
    PositionsVenue,
    b58encode,
    backend_payout,
    position_odds_bps,
    proxy_payout,
)

START_MS = 1_728_554_400_000  # 2024-10-10T10:00:00Z
WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
OTHER = b58encode(hashlib.sha256(b"another wallet").digest())
UNKNOWN = b58encode(hashlib.sha256(b"nobody").digest())
FAST = HttpSettings(rate_limit_per_s=10_000, rate_limit_burst=10_000, retry_attempts=3)
Log = list[tuple[str, str, int]]


async def no_sleep(_: float) -> None:
    """Retries back off through this: recorded by nobody, waited by nobody."""


class Recorder(httpx.AsyncHTTPTransport):
    """A real HTTP transport that also logs every exchange, redirects included."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.log.append((request.method, request.url.path, response.status_code))
        return response


@dataclass
class Clients:
    """Builds clients against the served simulator; closes them all at teardown."""

    base_url: str
    log: Log = field(default_factory=list)
    made: list[PositionsClient] = field(default_factory=list)

    def __call__(
        self,
        layer: str = "proxy",
        *,
        wallet: str = WALLET,
        base_url: str | None = None,
        http: HttpSettings = FAST,
    ) -> PositionsClient:
        transport = Transport(
            base_url or self.base_url, http, http_transport=Recorder(self.log), sleep=no_sleep
        )
        client = PositionsClient(transport, wallet=wallet, layer=layer)
        self.made.append(client)
        return client


@pytest.fixture
def venue() -> PositionsVenue:
    return PositionsVenue(SimClock.stepped(START_MS), 42)


class Swappable:
    """An ASGI app whose target each test replaces, so one server serves the whole module."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Swappable]]:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread, for this module's tests."""
    target = Swappable()
    config = uvicorn.Config(target, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # startup takes milliseconds; no fixed sleep
        if not thread.is_alive():
            raise RuntimeError("uvicorn failed to start")
        thread.join(0.005)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    yield f"http://{host}:{port}", target
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def base_url(venue: PositionsVenue, server: tuple[str, Swappable]) -> str:
    """The simulator's two layers over this test's fresh venue."""
    url, target = server
    target.app = Starlette(routes=positions_routes(venue))
    return url


@pytest.fixture
async def clients(base_url: str) -> AsyncIterator[Clients]:
    made = Clients(base_url)
    yield made
    for client in made.made:
        await client.aclose()


@pytest.fixture(params=["proxy", "backend"])
def layer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_market(venue: PositionsVenue, nth: int = 0) -> Any:
    now = venue.clock.now_ms()
    return [
        m
        for m in venue.markets()
        if m.status == MarketStatus.OPEN and m.settles_at_ms > now + 3_600_000
    ][nth]


def seed(venue: PositionsVenue, n: int, wallet: str = WALLET, *, nth: int = 0) -> list[int]:
    market = open_market(venue, nth)
    return [
        venue.open_position(wallet, market.address, 1, 250_000_000, 12_000).id for _ in range(n)
    ]


# --------------------------------------------------------------------------- unknown wallet


async def test_unknown_wallet_is_empty_on_proxy_and_not_found_on_backend(
    clients: Clients, layer: str
) -> None:
    client = clients(layer, wallet=UNKNOWN)
    if layer == "proxy":
        page = await client.list_positions()
        assert page.positions == [] and page.pagination.total == 0
        stats = await client.stats()
        assert stats.total_positions == 0 and stats.total_pnl == 0
    else:
        with pytest.raises(NotFound):
            await client.list_positions()
        with pytest.raises(NotFound):
            await client.stats()
    assert [p async for p in client.iter_positions()] == []  # both: "no positions"


# --------------------------------------------------------------------------- the round trip


async def test_open_list_stats_close(clients: Clients, venue: PositionsVenue, layer: str) -> None:
    client = clients(layer)
    market = open_market(venue)
    opened = await client.open_position(
        market=market.address,
        selected_team=1,
        amount=500_000_000,
        multiplier_bps=12_000,
        odds_home_bps=10_500,
        odds_away_bps=9_500,
    )
    assert isinstance(opened, Position)
    assert opened.status is PositionStatus.PLACED and opened.position_type == "OPEN"
    assert opened.wallet_address == WALLET and opened.market_address == market.address
    assert opened.created_at.tzinfo is not None and opened.market is not None
    assert opened.market.fixture_id == market.fixture_id
    assert expected_payout(opened) == 525_000_000  # the chosen side's odds override
    on_venue = venue.get_position(opened.id)
    assert (on_venue.amount, on_venue.selected_team, on_venue.wallet_address) == (
        500_000_000,
        1,
        WALLET,
    )

    assert [p.id for p in (await client.list_positions(status="open")).positions] == [opened.id]
    assert (await client.list_positions(status="closed")).positions == []
    stats = await client.stats()
    assert (stats.total_positions, stats.open_positions, stats.total_volume) == (
        1,
        1,
        500_000_000,
    )

    closed = await client.close_position(opened.id, close_price=550_000_000)
    assert closed.id == opened.id and not closed.is_open and closed.position_type == "CLOSE"
    assert closed.close_price == 550_000_000 and closed.close_pnl == 50_000_000
    assert closed.closed_at is not None
    assert venue.get_position(opened.id).status == PositionStatus.CANCELLED  # as the live one
    assert (await client.list_positions(status="open")).positions == []
    assert [p.id for p in (await client.list_positions(status="history")).positions] == [opened.id]
    stats = await client.stats()
    assert (stats.open_positions, stats.closed_positions) == (0, 1)
    with pytest.raises(Conflict):  # optimistic lock: already closed
        await client.close_position(opened.id)


async def test_payout_expected_differs_between_layers_but_expected_payout_does_not(
    clients: Clients, venue: PositionsVenue
) -> None:
    (pid,) = seed(venue, 1)
    via_proxy = (await clients("proxy").list_positions()).positions[0]
    via_backend = (await clients("backend").list_positions()).positions[0]
    sim = venue.get_position(pid)
    odds = position_odds_bps(sim)
    assert via_proxy.payout_expected == proxy_payout(sim.amount, odds)
    assert via_backend.payout_expected == backend_payout(sim.amount, sim.multiplier_bps, odds)
    assert via_proxy.payout_expected != via_backend.payout_expected  # NOTES: inconsistent
    assert expected_payout(via_proxy) == expected_payout(via_backend) == 300_000_000


async def test_open_by_fixture_id(clients: Clients, venue: PositionsVenue, layer: str) -> None:
    market = open_market(venue, 1)
    p = await clients(layer).open_position(
        market=market.id, selected_team=2, amount=7, multiplier_bps=15_000
    )
    assert p.market_address == market.address and expected_payout(p) == 10  # 7 x 1.5, floored


async def test_filters_and_paging(clients: Clients, venue: PositionsVenue, layer: str) -> None:
    client = clients(layer)
    first, second = open_market(venue, 0), open_market(venue, 1)
    on_first = seed(venue, 3, nth=0)
    (on_second,) = seed(venue, 1, nth=1)
    venue.close_position(on_first[0], wallet_address=WALLET)
    seed(venue, 2, wallet=OTHER)  # never listed under WALLET

    async def ids(**kw: Any) -> list[int]:
        return [p.id for p in (await client.list_positions(**kw)).positions]

    everything = [on_second, on_first[2], on_first[1], on_first[0]]  # newest first
    assert await ids() == await ids(status="all") == everything
    assert await ids(status="open") == await ids(status="current") == everything[:3]
    assert await ids(status="closed") == await ids(status="HISTORY") == [on_first[0]]
    assert await ids(fixture_id=first.id) == await ids(fixture_id=str(first.id)) == on_first[::-1]
    assert await ids(fixture_id=second.address) == [on_second]
    assert await ids(fixture_id="NoSuchMarket") == []
    page = await client.list_positions(page=2, limit=3)
    assert [p.id for p in page.positions] == everything[3:]
    assert page.pagination.model_dump() == {"page": 2, "limit": 3, "total": 4, "total_pages": 2}
    assert all(p.wallet_address == WALLET for p in (await client.list_positions()).positions)
    assert await ids(limit=100) == everything


async def test_close_forms(clients: Clients, venue: PositionsVenue) -> None:
    a, b, c = seed(venue, 3)
    proxy, backend = clients("proxy"), clients("backend")
    assert (await proxy.close_position(a)).close_pnl == 0  # close_price defaults to the stake
    assert (await proxy.close_position(b, via="patch", close_price=0)).close_pnl == -250_000_000
    assert (await backend.close_position(c, close_price=300_000_000)).close_pnl == 50_000_000
    assert all(venue.get_position(i).status != PositionStatus.PLACED for i in (a, b, c))
    # the simulator's owner check (on, as by default) accepted them: the wallet was sent
    assert [row.actor for row in venue.audit_log() if row.action == "close"] == [WALLET] * 3
    assert ("PATCH", "/api/positions", 200) in clients.log
    assert ("POST", "/api/positions/close", 200) in clients.log
    assert ("POST", "/api/v1/compat/positions/close", 200) in clients.log
    with pytest.raises(ClientValidationError, match="proxy layer only"):
        await backend.close_position(a, via="patch")


async def test_bets_alias_redirects_to_positions(clients: Clients, venue: PositionsVenue) -> None:
    ids = seed(venue, 3)
    proxy = clients("proxy")
    bets = await proxy.list_bets(status="open", limit=2)
    assert [p.id for p in bets.positions] == ids[::-1][:2]
    assert clients.log == [("GET", "/api/bets", 307), ("GET", "/api/positions", 200)]
    with pytest.raises(ClientValidationError, match="proxy layer only"):
        await clients("backend").list_bets()
    assert len(clients.log) == 2  # refused before sending


async def test_base_urls_may_include_the_layer_prefix(
    clients: Clients, venue: PositionsVenue, base_url: str
) -> None:
    (pid,) = seed(venue, 1)
    backend = clients("backend", base_url=base_url + "/api/v1")
    proxy = clients("proxy", base_url=base_url + "/api/")
    assert [p.id for p in (await backend.list_positions()).positions] == [pid]
    assert [p.id for p in (await proxy.list_positions()).positions] == [pid]
    assert (await backend.stats()).total_positions == 1


async def test_big_integers_stay_exact(clients: Clients, venue: PositionsVenue, layer: str) -> None:
    big = 2**62 + 12_345  # beyond 2**53 (a float would round it), within the backend's BIGINT
    client = clients(layer)
    opened = await client.open_position(
        market=open_market(venue).address, selected_team=1, amount=big, multiplier_bps=10_000
    )
    listed = (await client.list_positions()).positions[0]
    stats = await client.stats()
    assert opened.amount == listed.amount == stats.total_volume == big
    assert listed.fee_paid == venue.get_position(opened.id).fee_paid == big * 40 // 10_000
    assert Units(9).display(big) * 10**9 == big
    closed = await client.close_position(opened.id, close_price=big + 1)
    assert closed.close_pnl == 1 and closed.close_price == big + 1


# --------------------------------------------------------------------------- documented errors


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, {"ok": False, "error": "wallet_address is required"}, ValidationFailed),
        (400, {"ok": False, "error": "Missing required fields"}, ValidationFailed),
        (400, {"ok": False, "error": "INVALID_NUMERIC"}, ValidationFailed),
        (400, {"ok": False, "error": "BAD_JSON"}, ValidationFailed),
        (400, {"ok": False, "error": "position_id required"}, ValidationFailed),
        (400, {"ok": False, "error": "Unsupported action"}, ValidationFailed),
        (400, {"ok": False, "error": "INVALID_ARGS"}, ValidationFailed),
        (404, {"ok": False, "error": "Not found"}, NotFound),
        (409, {"ok": False, "error": "CONFLICT"}, Conflict),
        (500, {"ok": False, "error": "Internal error"}, ServerError),
        (502, {"ok": False, "error": "Backend error"}, ServerError),
    ],
)
def test_documented_error_bodies_map_to_the_error_tree(
    status: int, body: dict[str, Any], kind: type[Exception]
) -> None:
    """Includes `wallet_address is required`: the client cannot provoke it (it always sends one)."""
    error = error_for(
        status, json.dumps(body), httpx.Headers(), endpoint="/api/positions", method="GET"
    )
    assert type(error) is kind and error.status == status
    assert error.message == body["error"]
    if isinstance(error, ValidationFailed):
        assert error.messages == [body["error"]]


OPEN_BODY = {"wallet_address": WALLET, "selected_team": 1, "amount": 5, "multiplier_bps": 12000}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/api/positions", None, 400, "wallet_address is required"),
        ("GET", "/api/users/stats", None, 400, "wallet_address is required"),
        ("POST", "/api/positions", {"wallet_address": WALLET}, 400, "Missing required fields"),
        (
            "POST",
            "/api/positions",
            {**OPEN_BODY, "market_address": "m", "amount": "lots"},
            400,
            "INVALID_NUMERIC",
        ),
        ("PATCH", "/api/positions", {"action": "close"}, 400, "position_id required"),
        ("POST", "/api/positions/close", {"wallet_address": WALLET}, 400, "position_id required"),
        (
            "PATCH",
            "/api/positions",
            {"action": "reopen", "position_id": 1},
            400,
            "Unsupported action",
        ),
        (
            "POST",
            "/api/v1/compat/positions",
            {**OPEN_BODY, "market_address": "1", "selected_team": 3},
            400,
            "INVALID_ARGS",
        ),
        ("POST", "/api/v1/compat/positions/close", {"position_id": 0}, 400, "INVALID_ARGS"),
        ("GET", f"/api/v1/compat/users/{UNKNOWN}/positions", None, 404, "Not found"),
        ("GET", f"/api/v1/users/{UNKNOWN}/stats", None, 404, "Not found"),
    ],
)
async def test_documented_errors_from_the_simulator(
    base_url: str, method: str, path: str, body: Any, status: int, message: str
) -> None:
    async with Transport(base_url, FAST, sleep=no_sleep) as transport:
        with pytest.raises((ValidationFailed, NotFound)) as info:
            await transport.request(method, path, json_body=body, moves_money=method != "GET")
    assert info.value.status == status and info.value.message == message


@pytest.mark.parametrize(
    ("layer_", "method", "path", "body", "kind"),
    [
        ("proxy", "GET", "/api/positions", None, WalletRequired),
        ("proxy", "POST", "/api/positions", {"wallet_address": WALLET}, MissingFields),
        (
            "proxy",
            "POST",
            "/api/positions",
            {**OPEN_BODY, "market_address": "m", "amount": "lots"},
            InvalidNumeric,
        ),
        ("proxy", "POST", "/api/positions/close", {"wallet_address": WALLET}, PositionIdRequired),
        (
            "proxy",
            "PATCH",
            "/api/positions",
            {"action": "reopen", "position_id": 1},
            UnsupportedAction,
        ),
        (
            "backend",
            "POST",
            "/api/v1/compat/positions",
            {**OPEN_BODY, "market_address": "1", "selected_team": 3},
            InvalidArgs,
        ),
    ],
)
async def test_documented_refusals_reach_callers_as_their_own_types(
    clients: Clients, layer_: str, method: str, path: str, body: Any, kind: type[Exception]
) -> None:
    """The client's checks keep these from being sent in normal use; here the wire is forced so
    the mapping of the server's own answers is what is tested."""
    client = clients(layer_)
    with pytest.raises(kind) as info:
        await client._send(method, path, json_body=body, moves_money=method != "GET")
    assert isinstance(info.value, ValidationFailed) and info.value.status == 400


async def test_a_body_that_is_not_an_object_is_a_bad_json_refusal(clients: Clients) -> None:
    client = clients("proxy")
    with pytest.raises(BadJson):
        await client._send("POST", "/api/positions/close", json_body=[1], moves_money=True)


async def test_bad_json_is_refused(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as raw:
        for path in ("/api/positions", "/api/positions/close"):
            resp = await raw.post(path, content=b"{oops", headers={"content-type": "x"})
            assert resp.status_code == 400 and resp.json() == {"ok": False, "error": "BAD_JSON"}
            error = error_for(400, resp.text, resp.headers, endpoint=path, method="POST")
            assert isinstance(error, ValidationFailed) and error.messages == ["BAD_JSON"]


async def test_not_found_and_conflicts_through_the_client(
    clients: Clients, venue: PositionsVenue, layer: str
) -> None:
    client = clients(layer)
    with pytest.raises(NotFound):
        await client.open_position(
            market="NoSuchMarket", selected_team=1, amount=1, multiplier_bps=1
        )
    with pytest.raises(NotFound):
        await client.close_position(987_654)
    (pid,) = seed(venue, 1)
    await client.close_position(pid)
    with pytest.raises(Conflict, match="CONFLICT"):
        await client.close_position(pid)
    market = open_market(venue)
    venue.clock.set(market.settles_at_ms + 1)
    with pytest.raises(Conflict, match="MARKET_NOT_OPEN"):
        await client.open_position(
            market=market.address, selected_team=1, amount=1, multiplier_bps=1
        )


async def test_simulator_owner_check_refuses_a_foreign_close(
    clients: Clients, venue: PositionsVenue, layer: str
) -> None:
    (pid,) = seed(venue, 1)
    with pytest.raises(ValidationFailed, match="NOT_OWNER") as info:
        await clients(layer, wallet=OTHER).close_position(pid)
    assert info.value.status == 403 and venue.get_position(pid).status == PositionStatus.PLACED


async def test_server_errors_reads_retried_writes_outcome_unknown(
    clients: Clients, venue: PositionsVenue, layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed(venue, 2)
    real_list, real_open = venue.list_positions, venue.open_position
    calls = {"list": 0}

    def flaky_list(*args: Any, **kw: Any) -> Any:
        calls["list"] += 1
        if calls["list"] == 1:
            raise RuntimeError("database is restarting")
        return real_list(*args, **kw)

    def broken_open(*args: Any, **kw: Any) -> Any:
        real_open(*args, **kw)  # applied, then the answer is lost in a crash
        raise RuntimeError("crashed after commit")

    monkeypatch.setattr(venue, "list_positions", flaky_list)
    monkeypatch.setattr(venue, "open_position", broken_open)
    client = clients(layer)
    assert [p.id for p in (await client.list_positions()).positions] == ids[::-1]
    path = "/api/positions" if layer == "proxy" else f"/api/v1/compat/users/{WALLET}/positions"
    assert clients.log == [("GET", path, 500), ("GET", path, 200)]
    clients.log.clear()
    with pytest.raises(OutcomeUnknown):
        await client.open_position(
            market=open_market(venue).address, selected_team=1, amount=5, multiplier_bps=12_000
        )
    assert [m for m, *_ in clients.log] == ["POST"]  # never retried
    assert len(real_list(WALLET).positions) == 3  # it was applied: reconcile, never re-send


@pytest.mark.parametrize(
    ("layer_name", "message"), [("proxy", "Internal error"), ("backend", "Backend error")]
)
async def test_internal_and_backend_errors(
    clients: Clients,
    venue: PositionsVenue,
    monkeypatch: pytest.MonkeyPatch,
    layer_name: str,
    message: str,
) -> None:
    seed(venue, 1)

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("serialiser bug")

    monkeypatch.setattr(positions_api, "position_wire", boom)
    client = clients(layer_name)
    with pytest.raises(ServerError, match=message) as info:
        await client.list_positions()
    assert info.value.status == 500
    assert len(clients.log) == FAST.retry_attempts  # reads are retried, then give up


# --------------------------------------------------------------------------- refused locally


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.list_positions(limit=0), "limit"),
        (lambda c: c.list_positions(limit=101), "limit"),
        (lambda c: c.list_positions(page=0), "page"),
        (lambda c: c.list_positions(status="opne"), "status"),
        (lambda c: c.list_positions(fixture_id=""), "fixture_id"),
        (lambda c: c.iter_positions(page_size=500).__anext__(), "page_size"),
        (lambda c: c.iter_positions(status="any").__anext__(), "status"),
        (lambda c: c.iter_positions(max_pages=0).__anext__(), "max_pages"),
        (
            lambda c: c.open_position(market="m", selected_team=3, amount=1, multiplier_bps=1),
            "team",
        ),
        (
            lambda c: c.open_position(market="m", selected_team=True, amount=1, multiplier_bps=1),
            "team",
        ),
        (
            lambda c: c.open_position(market="m", selected_team=1, amount=0, multiplier_bps=1),
            "amount",
        ),
        (
            lambda c: c.open_position(market="m", selected_team=1, amount=-5, multiplier_bps=1),
            "amount",
        ),
        (
            lambda c: c.open_position(market="m", selected_team=1, amount=1.5, multiplier_bps=1),
            "amount",
        ),
        (
            lambda c: c.open_position(market="m", selected_team=1, amount=True, multiplier_bps=1),
            "amount",
        ),
        (
            lambda c: c.open_position(market="m", selected_team=1, amount=1, multiplier_bps=0),
            "multiplier",
        ),
        (
            lambda c: c.open_position(
                market="m", selected_team=1, amount=1, multiplier_bps=1, odds_away_bps=0
            ),
            "odds_away_bps",
        ),
        (
            lambda c: c.open_position(market=" ", selected_team=1, amount=1, multiplier_bps=1),
            "market",
        ),
        (lambda c: c.close_position(0), "position_id"),
        (lambda c: c.close_position(5, close_price=-1), "close_price"),
        (lambda c: c.close_position(5, via="put"), "via"),
    ],
)
async def test_bad_input_is_refused_before_sending(
    clients: Clients, layer: str, call: Callable[[PositionsClient], Any], match: str
) -> None:
    with pytest.raises(ClientValidationError, match=match):
        await call(clients(layer))
    assert clients.log == []


def test_client_refuses_to_start_without_a_wallet(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import load_settings

    with pytest.raises(ClientValidationError, match=r"positions\.base_url and positions\.wallet"):
        PositionsClient.from_settings(load_settings(None))
    no_wallet = load_settings(None, positions={"base_url": "http://127.0.0.1:9"})
    with pytest.raises(ClientValidationError, match=r"positions\.wallet_address must be set"):
        PositionsClient.from_settings(no_wallet)
    transport = Transport("http://127.0.0.1:9")
    for wallet in (None, "", "0x52908400098527886E0F7030069857D2E4169EE7", WALLET[:-1] + "0"):
        with pytest.raises(ClientValidationError, match="wallet_address"):
            PositionsClient(transport, wallet=wallet)
    with pytest.raises(ClientValidationError, match="layer"):
        PositionsClient(transport, wallet=WALLET, layer="frontend")
    ok = load_settings(None, positions={"base_url": "http://127.0.0.1:9", "wallet_address": WALLET})
    assert PositionsClient.from_settings(ok).wallet == WALLET


# --------------------------------------------------------------------------- page walks


async def walk(
    client: PositionsClient,
    between: Callable[[int], None],
    **kw: Any,
) -> list[int]:
    """Consume `iter_positions`, calling `between(n)` after every n-th position: the server
    changes between the iterator's steps, hence between its page reads."""
    got: list[int] = []
    async for p in client.iter_positions(**kw):
        got.append(p.id)
        between(len(got))
    return got


async def naive_walk(
    client: PositionsClient, between: Callable[[int], None], **kw: Any
) -> list[int]:
    """page += 1 until total_pages: what the walk must do better than."""
    got: list[int] = []
    size = kw.pop("page_size")
    page = 1
    while True:
        result = await client.list_positions(page=page, limit=size, **kw)
        for p in result.positions:
            got.append(p.id)
            between(len(got))
        if page >= result.pagination.total_pages:
            return got
        page += 1


async def test_walk_without_changes_reads_each_page_once(
    clients: Clients, venue: PositionsVenue, layer: str
) -> None:
    ids = seed(venue, 23)
    client = clients(layer)
    assert await walk(client, lambda _: None, page_size=5) == ids[::-1]
    assert len(clients.log) == 5
    clients.log.clear()
    assert await walk(client, lambda _: None, page_size=23) == ids[::-1]
    assert len(clients.log) == 1  # one full page holding everything: `total` says it ended


@pytest.mark.parametrize("seed_n", range(6))
async def test_walk_with_inserts_between_pages(
    clients: Clients, venue: PositionsVenue, layer: str, seed_n: int
) -> None:
    """New positions enter at the front and push old ones across page boundaries."""
    rng = random.Random(seed_n)
    original = seed(venue, 40 + seed_n)
    market = open_market(venue)
    inserted: list[int] = []

    def insert(_: int) -> None:
        for _ in range(rng.choice([0, 0, 1, 2, 7])):
            inserted.append(venue.open_position(WALLET, market.address, 2, 10, 12_000).id)

    got = await walk(clients(layer), insert, page_size=rng.choice([3, 5, 8]))
    assert len(got) == len(set(got)), "a position was yielded twice"
    assert set(original) <= set(got), "a position that existed all along was missed"
    assert set(got) <= set(original) | set(inserted)
    assert inserted, "the schedule must actually change the list"


@pytest.mark.parametrize("seed_n", range(8))
async def test_walk_open_positions_while_others_close_and_open(
    clients: Clients, venue: PositionsVenue, layer: str, seed_n: int
) -> None:
    """Closing positions pulls the rest towards the front: a naive walk misses some."""
    rng = random.Random(seed_n)
    market = open_market(venue)
    original = seed(venue, 60)
    page_size = rng.choice([4, 6, 10])

    def schedule() -> tuple[Callable[[int], None], set[int]]:
        closed: set[int] = set()

        def change(n: int) -> None:
            if n % page_size == 0 or rng.random() < 0.2:
                open_now = [i for i in original if i not in closed]
                for victim in rng.sample(open_now, min(len(open_now), rng.choice([1, 2, 5]))):
                    venue.close_position(victim, wallet_address=WALLET)
                    closed.add(victim)
                if rng.random() < 0.5:
                    venue.open_position(WALLET, market.address, 1, 10, 12_000)

        return change, closed

    change, closed = schedule()
    got = await walk(clients(layer), change, status="open", page_size=page_size)
    assert len(got) == len(set(got))
    never_closed = set(original) - closed
    assert never_closed <= set(got), f"missed {sorted(never_closed - set(got))}"
    assert closed, "the schedule must actually close positions"


async def test_the_removal_schedule_defeats_a_naive_walk(
    clients: Clients, venue: PositionsVenue
) -> None:
    """The scenario above is a real hazard: page += 1 misses positions that stayed open."""
    original = seed(venue, 30)
    closed: set[int] = set()

    def close_newest_after_first_page(n: int) -> None:
        if n == 5:
            for victim in sorted(original, reverse=True)[:3]:
                venue.close_position(victim, wallet_address=WALLET)
                closed.add(victim)

    naive = await naive_walk(
        clients("proxy"), close_newest_after_first_page, status="open", page_size=5
    )
    assert set(original) - closed - set(naive), "expected the naive walk to miss some"


async def test_walk_of_closed_positions_while_more_close(
    clients: Clients, venue: PositionsVenue, layer: str
) -> None:
    """`closed` only grows, anywhere in the list: nothing shifts backwards, nothing is missed."""
    ids = seed(venue, 40)
    for pid in ids[::2]:
        venue.close_position(pid, wallet_address=WALLET)
    before = set(ids[::2])
    rest = iter(ids[1::2])

    def close_more(_: int) -> None:
        pid = next(rest, None)
        if pid is not None:
            venue.close_position(pid, wallet_address=WALLET)

    got = await walk(clients(layer), close_more, status="closed", page_size=3)
    assert len(got) == len(set(got)) and before <= set(got)


async def test_walk_of_a_list_growing_faster_than_it_is_read_ends_with_a_clear_error(
    clients: Clients, venue: PositionsVenue
) -> None:
    seed(venue, 10)
    market = open_market(venue)

    def flood(_: int) -> None:
        for _ in range(3):
            venue.open_position(WALLET, market.address, 1, 10, 12_000)

    with pytest.raises(PaginationError, match="did not end within 6 page reads"):
        await walk(clients("proxy"), flood, page_size=2, max_pages=6)


# --------------------------------------------------------------------------- a lying server


def position_json(pid: int) -> dict[str, Any]:
    return {
        "id": pid,
        "wallet_address": WALLET,
        "market_address": "M",
        "position_type": "OPEN",
        "selected_team": 1,
        "amount": 10,
        "multiplier_bps": 10_000,
        "payout_expected": 10,
        "status": 1,
        "is_claimed": False,
        "pnl": 0,
        "fee_paid": 0,
        "timestamp": "2024-10-10T12:00:00Z",
        "created_at": "2024-10-10T12:00:00Z",
        "updated_at": "2024-10-10T12:00:00Z",
        "confirmation_status": "confirmed",
    }


def liar(answer: Callable[[int, int], dict[str, Any]]) -> PositionsClient:
    def handler(request: httpx.Request) -> httpx.Response:
        page, limit = int(request.url.params["page"]), int(request.url.params["limit"])
        return httpx.Response(200, json=answer(page, limit))

    transport = Transport(
        "http://liar.test", FAST, http_transport=httpx.MockTransport(handler), sleep=no_sleep
    )
    return PositionsClient(transport, wallet=WALLET)


def page_of(page: int, limit: int, total: int, ids: list[int], **meta: Any) -> dict[str, Any]:
    pagination = {"page": page, "limit": limit, "total": total, "total_pages": -(-total // limit)}
    return {
        "ok": True,
        "positions": [position_json(i) for i in ids],
        "pagination": {**pagination, **meta},
    }


async def test_lie_total_pages_growing_forever() -> None:
    def endless(page: int, limit: int) -> dict[str, Any]:
        top = 10**6 - page * limit
        return page_of(page, limit, (page + 1) * limit, list(range(top, top - limit, -1)))

    client = liar(endless)
    with pytest.raises(PaginationError, match="did not end within 50 page reads"):
        await walk(client, lambda _: None, page_size=10, max_pages=50)
    await client.aclose()


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (lambda page, limit: page_of(1, limit, 100, list(range(100, 100 - limit, -1))), "page 1"),
        (
            lambda page, limit: page_of(page, limit, 100, list(range(100, 100 - limit - 1, -1))),
            "more than its limit",
        ),
        (lambda page, limit: page_of(page, limit, 100, list(range(1, limit + 1))), "newest first"),
        (
            lambda page, limit: page_of(page, 2 * limit, 100, list(range(100, 100 - limit, -1))),
            "paged by",
        ),
    ],
)
async def test_lies_the_walk_cannot_reason_about(
    answer: Callable[[int, int], dict[str, Any]], match: str
) -> None:
    client = liar(answer)
    with pytest.raises(PaginationError, match=match):
        await walk(client, lambda _: None, page_size=10)
    await client.aclose()


async def test_smaller_pages_than_asked_are_followed() -> None:
    data = list(range(57, 0, -1))

    def clamps_to_20(page: int, limit: int) -> dict[str, Any]:
        size = min(limit, 20)
        return page_of(page, size, len(data), data[(page - 1) * size : page * size])

    client = liar(clamps_to_20)
    assert await walk(client, lambda _: None, page_size=100) == data
    await client.aclose()


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ({"ok": False, "error": "Backend error"}, ValidationFailed, "Backend error"),
        ([1, 2], BadResponse, "JSON object"),
        (
            {"positions": [{"id": 1}], "pagination": {}},
            BadResponse,
            r"positions\.0\.wallet_address",
        ),
    ],
)
async def test_strange_success_bodies(body: Any, error: type[Exception], match: str) -> None:
    transport = Transport(
        "http://odd.test",
        FAST,
        http_transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body)),
    )
    client = PositionsClient(transport, wallet=WALLET)
    with pytest.raises(error, match=match):
        await client.list_positions()
    await client.aclose()
