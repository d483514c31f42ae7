"""Fuzz the simulator's own API from its OpenAPI description: it never answers 500.

The simulator serves `GET /openapi.json` (bot/sim/openapi.py, built from its route table).
schemathesis loads it from the live server on loopback and generates, per operation, requests
that fit the description (positive) and requests that break it (negative: wrong types, missing
required fields, out-of-range numbers, bad path and query values), sent with a valid Bearer
token so the authed handlers are reached. On top, every body-taking route gets raw junk
(invalid JSON, NaN and 1e999 literals, deeply nested arrays, invalid UTF-8), and the loopback
control endpoints get malformed bodies. A 5xx is a failure in every case: a malformed request is
the client's fault and must be answered 4xx.

Examples are bounded so the whole file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.generation import GenerationMode

from bot.api.alura import AluraClient
from bot.api.auth import WalletAuth
from bot.api.transport import Transport
from bot.sim.app import build_app
from bot.sim.openapi import OPERATIONS, openapi_spec
from bot.sim.server import SimOptions, SimServer, build_simulator
from tests.conftest import TEST_KEY

EXAMPLES_PER_OPERATION = 30
FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


FUZZED = set(OPERATIONS) - {("GET", "/openapi.json")}


@dataclass
class Target:
    url: str
    token: str
    schema: Any
    session: requests.Session


@pytest.fixture(scope="module")
def target(sim_feed: Any) -> Iterator[Target]:
    """One live simulator for the module, a logged-in wallet, and the schema it serves."""
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    with SimServer(sim) as server:

        async def login() -> str:
            transport = Transport(server.url)
            client = AluraClient(transport, WalletAuth(SecretStr(TEST_KEY), transport))
            try:
                await client.profile()
                assert client.auth is not None and client.auth.current is not None
                return client.auth.current.token
            finally:
                await client.aclose()

        token = asyncio.run(login())
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        with requests.Session() as session:
            yield Target(server.url, token, schema, session)


def describe(response: requests.Response, case: Any) -> str:
    return (
        f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r} "
        f"-> {response.status_code}: {response.text[:300]}"
    )


def test_served_description_covers_every_route(target: Target, sim_feed: Any) -> None:
    """The served document is valid OpenAPI (schemathesis loaded it) and names every route of
    the app except the loopback control endpoints, with its parameters and body."""
    served = requests.get(f"{target.url}/openapi.json", timeout=10).json()
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    assert served == openapi_spec(build_app(sim).routes)
    operations = {
        (method.upper(), path) for path, item in served["paths"].items() for method in item
    }
    assert operations == set(OPERATIONS)
    assert not any(path.startswith("/__sim") for _, path in operations)
    quick = served["paths"]["/trading-sessions"]["post"]
    body = quick["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["budget", "profitTarget", "assetIndex"]
    assert body["properties"]["budget"]["minimum"] == 10
    assert quick["security"] == [{"bearerAuth": []}]
    listed = served["paths"]["/api/positions"]["get"]["parameters"]
    assert {p["name"] for p in listed} == {
        "wallet_address",
        "status",
        "fixture_id",
        "page",
        "limit",
    }
    loaded = {(op.ok().method.upper(), op.ok().path) for op in target.schema.get_all_operations()}
    assert loaded == FUZZED  # schemathesis leaves out the document it was loaded from


@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in sorted(FUZZED)]
)
def test_fuzzed_requests_never_get_a_500(target: Target, method: str, path: str) -> None:
    operation = target.schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    statuses: list[int] = []

    @FUZZ
    @given(case=strategy)
    def prop(case: Any) -> None:
        response = case.call(
            base_url=target.url,
            session=target.session,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=10,
            allow_redirects=False,
        )
        note(describe(response, case))
        statuses.append(response.status_code)
        assert response.status_code < 500, describe(response, case)

    prop()
    assert set(statuses) - {401}, "every request was refused at the door: the token never worked"


JUNK = [
    b"{",
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"NaN",
    b'{"amount": NaN, "budget": Infinity, "profitTarget": -Infinity}',
    b'{"amount": 1e999, "budget": 1e999, "profitTarget": 1, "assetIndex": 0}',
    b'{"budget": 100, "profitTarget": 3, "assetIndex": 1e400}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xff\xfe\xfd",
    b'{"address": "\xff\xfe"}',
    b'{"position_id": 1e400, "wallet_address": "x"}',
    b'{"position_id": "99999999999999999999999999999999", "close_price": -1}',
    b"<html></html>",
]
BODY_ROUTES = sorted((m, p) for m, p in OPERATIONS if m in ("POST", "PATCH", "PUT"))


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
def test_raw_junk_bodies_never_get_a_500(target: Target, method: str, path: str) -> None:
    """Bodies schemathesis would never build: not JSON, NaN literals, numbers that overflow a
    float, nesting deep enough to exhaust a recursive parser, invalid UTF-8."""
    concrete = path.replace("{trade_id}", "t1").replace("{position_id}", "p1")
    concrete = concrete.replace("{user_id}", "u-1")
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=target.url, timeout=30) as client:
        for body in JUNK:
            response = client.request(method, concrete, content=body, headers=headers)
            assert response.status_code < 500, (body[:60], response.status_code, response.text)

    @settings(max_examples=10, deadline=None, database=None)
    @given(body=st.binary(max_size=64))
    def prop(body: bytes) -> None:
        with httpx.Client(base_url=target.url, timeout=30) as client:
            response = client.request(method, concrete, content=body, headers=headers)
        assert response.status_code < 500, (body, response.status_code, response.text)

    prop()


CONTROL_BODIES = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "advance_ms": st.sampled_from(["abc", None, 1.5, 1e400, [], {}, -(10**30), 10**30]),
            "set_ms": st.sampled_from(["now", None, 2.5, 10**40, -1, [1]]),
            "paused": st.sampled_from([True, False, "yes", None, 2]),
        },
    ),
    st.fixed_dictionaries(
        {
            "address": st.sampled_from(["0x" + "1" * 40, "nope", 5, None]),
            "amount": st.sampled_from(["1e999", "NaN", -5, True, None, "ten", 10**40]),
        }
    ),
)


def test_control_endpoints_refuse_malformed_requests_with_4xx(sim_server: Any) -> None:
    """The loopback-only control endpoints are tools, but a typo in a test script is still a
    400 with a reason, not a 500 (a simulator of its own: these calls change its state)."""
    url = sim_server.url

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        route=st.sampled_from(
            [("POST", "/__sim/clock"), ("POST", "/__sim/fund"), ("PUT", "/__sim/faults")]
        ),
        body=CONTROL_BODIES | st.sampled_from([b"{", b"[1]", b"\xff"]),
    )
    def prop(route: tuple[str, str], body: Any) -> None:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.request(*route, content=content)
        assert response.status_code < 500, (route, body, response.status_code, response.text)

    prop()
    with httpx.Client(base_url=url, timeout=30) as client:
        for since in ("abc", "nan", "1e999", ""):
            response = client.get("/__sim/requests", params={"since": since})
            assert response.status_code < 500, (since, response.status_code, response.text)
