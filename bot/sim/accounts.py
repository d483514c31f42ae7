"""Simulated accounts: single-use expiring nonces, EIP-191 signature recovery, signed JWTs.

eth-account is imported on first use (it takes about a second), so the simulator starts fast;
`warm_up` loads it in the background once the server listens.

Auth runs on wall-clock time (tokens are about real time, even when the market clock is
accelerated); the clock is injectable so tests can expire nonces and tokens without sleeping.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jwt

JWT_ALGORITHM = "HS256"
RETIRED_SECRETS_KEPT = 8


class AuthFailed(Exception):
    """Answered as 401 with this message."""


@dataclass
class Wallet:
    """One simulated user: USDC balance (Decimal, never negative), profile, referrals."""

    address: str
    balance: Decimal
    created_at_ms: int
    user_id: str
    referral_codes: list[str] = field(default_factory=list)
    referred_by: str | None = None
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    rewards_claimed: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "balance": str(self.balance),
            "created_at_ms": self.created_at_ms,
            "user_id": self.user_id,
            "referral_codes": self.referral_codes,
            "referred_by": self.referred_by,
            "deposits": self.deposits,
            "withdrawals": self.withdrawals,
            "rewards_claimed": str(self.rewards_claimed),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wallet:
        return cls(
            address=data["address"],
            balance=Decimal(data["balance"]),
            created_at_ms=data["created_at_ms"],
            user_id=data["user_id"],
            referral_codes=list(data["referral_codes"]),
            referred_by=data["referred_by"],
            deposits=list(data["deposits"]),
            withdrawals=list(data["withdrawals"]),
            rewards_claimed=Decimal(data["rewards_claimed"]),
        )


def challenge_message(address: str, nonce: str, issued_at: float) -> str:
    iso = datetime.fromtimestamp(issued_at, UTC).isoformat(timespec="seconds")
    return (
        "Sign in to Alura Trading (simulator)\n\n"
        f"Address: {address}\nNonce: {nonce}\nIssued At: {iso}"
    )


@dataclass
class _Pending:
    nonce: str
    message: str
    expires_at: float


def normalise_address(address: Any) -> str:
    """A 0x + 40 hex address, lower-cased for lookups; refuses anything else."""
    if not isinstance(address, str) or not address.startswith("0x") or len(address) != 42:
        raise ValueError("address must be a 0x-prefixed, 40-hex-digit EVM address")
    try:
        int(address[2:], 16)
    except ValueError:
        raise ValueError("address must be a 0x-prefixed, 40-hex-digit EVM address") from None
    return address.lower()


class Accounts:
    """Wallets and login state of the simulated venue."""

    def __init__(
        self,
        *,
        jwt_secret: str | None = None,
        token_ttl_s: int = 86_400,
        nonce_ttl_s: int = 300,
        initial_balance: Decimal = Decimal("10000"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jwt_secret = jwt_secret or secrets.token_hex(32)
        self.token_ttl_s = token_ttl_s
        self.nonce_ttl_s = nonce_ttl_s
        self.initial_balance = initial_balance
        self.clock = clock
        self.wallets: dict[str, Wallet] = {}
        self._pending: dict[str, _Pending] = {}
        self._last_used: dict[str, str] = {}
        self._retired_secrets: list[str] = []
        self._referral_index: dict[str, str] = {}

    def wallet(self, address: str, *, now_ms: int = 0) -> Wallet:
        key = normalise_address(address)
        if key not in self.wallets:
            self.wallets[key] = Wallet(
                address=key,
                balance=self.initial_balance,
                created_at_ms=now_ms,
                user_id=f"u-{key[2:14]}",
            )
        return self.wallets[key]

    def by_user_id(self, user_id: str) -> Wallet | None:
        return next((w for w in self.wallets.values() if w.user_id == user_id), None)

    def challenge(self, address: Any) -> dict[str, str]:
        key = normalise_address(address)
        nonce = secrets.token_hex(16)
        now = self.clock()
        message = challenge_message(key, nonce, now)
        self._pending[key] = _Pending(nonce, message, now + self.nonce_ttl_s)
        return {"address": address, "nonce": nonce, "message": message}

    def verify(self, address: Any, signature: Any, *, now_ms: int = 0) -> dict[str, Any]:
        key = normalise_address(address)
        pending = self._pending.get(key)
        if not isinstance(signature, str):
            raise AuthFailed("Invalid signature")
        if pending is not None and self.clock() > pending.expires_at:
            del self._pending[key]
            raise AuthFailed("Challenge expired (request a new one)")
        signer = None if pending is None else self._signed_by(pending.message, signature)
        if pending is None or signer != key:
            if self._signed_by(self._last_used.get(key), signature) == key:
                raise AuthFailed("Nonce already used (request a new challenge)")
            if pending is None:
                raise AuthFailed("No pending challenge for this address (request a new one)")
            raise AuthFailed(
                "Invalid signature" if signer is None else "Signature does not match address"
            )
        del self._pending[key]
        self._last_used[key] = pending.message
        wallet = self.wallet(key, now_ms=now_ms)
        now = self.clock()
        token = jwt.encode(
            {
                "sub": key,
                "uid": wallet.user_id,
                "iat": int(now),
                "exp": int(now) + self.token_ttl_s,
                "jti": secrets.token_hex(8),
            },
            self.jwt_secret,
            algorithm=JWT_ALGORITHM,
        )
        return {
            "ok": True,
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": self.token_ttl_s,
            "user": {"address": key, "userId": wallet.user_id},
        }

    @staticmethod
    def _signed_by(message: str | None, signature: str) -> str | None:
        """The lower-cased address that signed `message`, or None if it cannot be recovered."""
        if message is None:
            return None
        from eth_account import Account  # ~1 s to import: not on the start-up path
        from eth_account.messages import encode_defunct

        try:
            signer = Account.recover_message(encode_defunct(text=message), signature=signature)
        except Exception:  # eth-account raises several types for malformed signatures
            return None
        return str(signer).lower()

    def authenticate(self, header: str | None) -> Wallet:
        """The wallet behind `Authorization: Bearer <jwt>`, or AuthFailed."""
        if not header or not header.startswith("Bearer "):
            raise AuthFailed("Missing Bearer token")
        claims = self._decode(header[7:], self.jwt_secret)
        if claims is None:
            if any(self._decode(header[7:], old) for old in self._retired_secrets):
                raise AuthFailed("Token expired")
            raise AuthFailed("Invalid token")
        if self.clock() >= claims["exp"]:
            raise AuthFailed("Token expired")
        wallet = self.wallets.get(str(claims["sub"]))
        if wallet is None:
            raise AuthFailed("Unknown user")
        return wallet

    @staticmethod
    def _decode(token: str, secret: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[JWT_ALGORITHM],
                options={"verify_exp": False, "require": ["sub", "exp"]},
            )
        except jwt.PyJWTError:
            return None
        return claims

    def expire_all_tokens(self) -> None:
        """Fault injection: rotate the signing secret so every issued token stops working; the
        old secrets are kept a while so those tokens are told "expired", as the real API would."""
        self._retired_secrets = [self.jwt_secret, *self._retired_secrets][:RETIRED_SECRETS_KEPT]
        self.jwt_secret = secrets.token_hex(32)

    def create_referral_code(self, wallet: Wallet, code: str | None) -> str:
        code = (code or f"ALU{secrets.token_hex(3).upper()}").upper()
        if not code.isalnum() or not 4 <= len(code) <= 16:
            raise ValueError("code must be 4..16 letters or digits")
        owner = self._referral_index.get(code)
        if owner is not None and owner != wallet.address:
            raise ValueError("code already taken")
        if code not in wallet.referral_codes:
            wallet.referral_codes.append(code)
        self._referral_index[code] = wallet.address
        return code

    def referral_owner(self, code: str) -> str | None:
        return self._referral_index.get(code.upper())

    def to_json(self) -> dict[str, Any]:
        return {
            "jwt_secret": self.jwt_secret,
            "retired_secrets": self._retired_secrets,
            "last_used_challenges": self._last_used,
            "wallets": [w.to_json() for w in self.wallets.values()],
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self.jwt_secret = data["jwt_secret"]
        self._retired_secrets = list(data.get("retired_secrets", []))
        self._last_used = dict(data.get("last_used_challenges", {}))
        self.wallets = {w["address"]: Wallet.from_json(w) for w in data["wallets"]}
        self._referral_index = {
            code: w.address for w in self.wallets.values() for code in w.referral_codes
        }


def warm_up() -> None:
    """Import eth-account now (call it in a background thread once the server listens)."""
    import eth_account.messages  # noqa: F401
