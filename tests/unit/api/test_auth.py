"""Wallet login: real signatures, token cache, refresh before expiry and on 401, shared refresh."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import SecretStr

from bot.api.auth import address_of, sign_message
from bot.api.errors import Unauthorized
from tests.conftest import TEST_ADDRESS


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_signature_recovers_to_configured_address(test_key: SecretStr) -> None:
    signature = sign_message(test_key, "hello alura\nnonce: 42")
    recovered = Account.recover_message(
        encode_defunct(text="hello alura\nnonce: 42"), signature=signature
    )
    assert recovered == address_of(test_key) == TEST_ADDRESS
    assert signature.startswith("0x") and len(signature) == 132


async def test_login_sends_signed_challenge_and_caches_token(venue: Any, client_for: Any) -> None:
    venue.on(
        "GET",
        "/user/profile",
        lambda r: httpx.Response(200 if venue.authed(r) else 401, json={"address": TEST_ADDRESS}),
    )
    async with client_for() as client:
        await client.profile()
        await client.profile()
    assert venue.logins == 1
    verify = venue.last("POST", "/auth/evm/verify")
    assert b'"signature"' in verify.content


async def test_token_refreshed_before_expiry(venue: Any, client_for: Any) -> None:
    venue.token_ttl = 3600
    clock = Clock()
    venue.on(
        "GET", "/user/profile", lambda r: httpx.Response(200 if venue.authed(r) else 401, json={})
    )
    async with client_for(clock=clock) as client:
        await client.profile()
        clock.now += 3600 - 301  # 301 s left: still outside the 300 s refresh margin
        await client.profile()
        assert venue.logins == 1
        clock.now += 2  # 299 s left: inside the margin
        await client.profile()
    assert venue.logins == 2


async def test_401_refreshes_once_and_resends(venue: Any, client_for: Any) -> None:
    venue.on(
        "GET", "/user/profile", lambda r: httpx.Response(200 if venue.authed(r) else 401, json={})
    )
    async with client_for() as client:
        await client.profile()
        venue.valid_tokens.clear()  # the server forgets the token (e.g. restarted)
        await client.profile()
    assert venue.logins == 2


async def test_second_401_raises_unauthorized(venue: Any, client_for: Any) -> None:
    venue.routes[("GET", "/user/profile")] = lambda r: httpx.Response(401, json={"message": "nope"})
    async with client_for() as client:
        with pytest.raises(Unauthorized):
            await client.profile()
    assert venue.logins == 2
    assert len([r for r in venue.requests if r.url.path == "/user/profile"]) == 2


async def test_concurrent_callers_share_one_login(venue: Any, client_for: Any) -> None:
    venue.on(
        "GET", "/user/profile", lambda r: httpx.Response(200 if venue.authed(r) else 401, json={})
    )
    async with client_for() as client:
        await asyncio.gather(*(client.profile() for _ in range(20)))
    assert venue.logins == 1


async def test_concurrent_401s_share_one_refresh(venue: Any, client_for: Any) -> None:
    venue.on(
        "GET", "/user/profile", lambda r: httpx.Response(200 if venue.authed(r) else 401, json={})
    )
    async with client_for() as client:
        await client.profile()
        venue.valid_tokens.clear()
        await asyncio.gather(*(client.profile() for _ in range(10)))
    assert venue.logins == 2


async def test_verify_with_wrong_signature_is_unauthorized(venue: Any, client_for: Any) -> None:
    """The mock venue recovers the signer; a tampered message must not log in."""
    original = venue.handler

    def tamper(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if request.url.path == "/auth/evm/challenge":
            body = response.json()
            body["message"] = body["message"] + " (tampered)"
            return httpx.Response(200, json=body)
        return response

    venue.handler = tamper  # type: ignore[method-assign]
    async with client_for() as client:
        assert client.auth is not None
        client.transport._client._transport = httpx.MockTransport(tamper)
        with pytest.raises(Unauthorized, match="bad signature"):
            await client.auth.login()
