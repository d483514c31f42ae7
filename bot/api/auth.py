"""EVM wallet login: challenge -> EIP-191 personal_sign (eth-account) -> verify -> Bearer JWT.

The token is cached with its expiry and refreshed `refresh_margin_s` before it runs out; concurrent
callers wait on one shared refresh instead of each logging in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import SecretStr, ValidationError

from bot.api.errors import BadResponse, Unauthorized
from bot.api.models import Challenge, TokenGrant
from bot.api.transport import Transport, parse_json
from bot.logs import register_secret


def address_of(key: SecretStr) -> str:
    """The checksummed address a private key controls."""
    return str(Account.from_key(key.get_secret_value()).address)


def sign_message(key: SecretStr, message: str) -> str:
    """EIP-191 personal_sign of a text message, 0x-prefixed hex, as MetaMask would produce it."""
    signed = Account.sign_message(encode_defunct(text=message), private_key=key.get_secret_value())
    return "0x" + bytes(signed.signature).hex()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A granted token; `repr` leaves the token out so it cannot leak through a log line."""

    token: str = field(repr=False)
    expires_at: float
    address: str


class WalletAuth:
    """Token provider for `Transport`: logs in on demand, caches, refreshes once for everyone."""

    def __init__(
        self,
        key: SecretStr,
        transport: Transport,
        *,
        refresh_margin_s: float = 300.0,
        referral_code: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._transport = transport
        self._margin = refresh_margin_s
        self._referral = referral_code
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: TokenInfo | None = None
        self.address = address_of(key)
        self.logins = 0

    def __repr__(self) -> str:
        return f"WalletAuth(address={self.address})"

    @property
    def current(self) -> TokenInfo | None:
        return self._current

    def _fresh(self, info: TokenInfo | None) -> bool:
        return info is not None and info.expires_at - self._margin > self._clock()

    async def token(self) -> str:
        info = self._current
        if info is not None and self._fresh(info):
            return info.token
        async with self._lock:
            if self._current is None or not self._fresh(self._current):
                self._current = await self.login()
            return self._current.token

    def invalidate(self, token: str) -> None:
        """Drop a token the server refused, unless a newer one already replaced it."""
        if self._current is not None and self._current.token == token:
            self._current = None

    async def login(self) -> TokenInfo:
        challenge_ep = "/auth/evm/challenge"
        resp = await self._transport.request(
            "POST", challenge_ep, json_body={"address": self.address}
        )
        try:
            challenge = Challenge.model_validate(parse_json(resp, endpoint=challenge_ep))
        except ValidationError as exc:
            raise BadResponse(
                f"unexpected challenge: {exc.error_count()} problem(s)",
                endpoint=challenge_ep,
                method="POST",
                status=resp.status_code,
                body=resp.text[:300],
            ) from None
        if challenge.address.lower() != self.address.lower():
            raise Unauthorized(
                "challenge issued for a different address", endpoint=challenge_ep, method="POST"
            )
        signature = sign_message(self._key, challenge.message)
        register_secret(signature)
        body: dict[str, str] = {"address": self.address, "signature": signature}
        if self._referral:
            body["referralCode"] = self._referral
        verify_ep = "/auth/evm/verify"
        requested_at = self._clock()
        resp = await self._transport.request("POST", verify_ep, json_body=body)
        try:
            grant = TokenGrant.model_validate(parse_json(resp, endpoint=verify_ep))
        except ValidationError as exc:
            fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            raise BadResponse(
                f"unexpected verify answer (fields: {fields or '?'})",
                endpoint=verify_ep,
                method="POST",
                status=resp.status_code,
            ) from None
        if not grant.ok:
            raise Unauthorized("verify answered ok=false", endpoint=verify_ep, method="POST")
        register_secret(grant.access_token)
        self.logins += 1
        return TokenInfo(
            token=grant.access_token,
            expires_at=requested_at + grant.expires_in,
            address=self.address,
        )
