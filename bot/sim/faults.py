"""Seeded, reproducible fault injection for the simulator, as ASGI middleware.

Rules match a request by method and path pattern and fire with a probability (or on every Nth
match). Kinds: 429 with Retry-After, a 5xx, added latency, a dropped connection (nothing applied),
a lost response (applied, then the connection is cut: the case that makes naive bots open a
session twice), token expiry, and Hyperliquid's `Builder fee approval failed … 429`.

An injected error answers in the error shape of the layer it hits: `{statusCode, message}` on the
Alura API, the documented `{ok: false, error}` on the user-positions API (`/api/v1/*` backend and
the proxy's `/api/positions*`, `/api/users/stats`, `/api/bets`). A builder-fee failure happens
while the backend processes an authenticated request, so it fires only on requests that carry a
valid token (an unauthenticated one gets the real 401); 429, latency and cuts come before auth.
"""

from __future__ import annotations

import asyncio
import fnmatch
import http
import json
import logging
import random
import threading
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal[
    "rate_limit", "status", "latency", "drop", "lost_response", "token_expiry", "builder_fee"
]
KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
BUILDER_FEE_MESSAGE = "Builder fee approval failed: HTTP request failed (status 429)"
POSITIONS_PATHS = (
    "/api/v1/*",
    "/api/positions",
    "/api/positions/*",
    "/api/users/stats",
    "/api/bets",
)
"""Paths of the user-positions service (both layers); everything else is the Alura API."""


def is_positions_path(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in POSITIONS_PATHS)


class FaultConfigError(ValueError):
    """A fault profile that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class FaultRule:
    kind: str
    match: str = "*"
    probability: float = 1.0
    every: int = 0
    status: int = 503
    retry_after: str = "1"
    latency_ms: int = 0

    def matches(self, method: str, path: str) -> bool:
        pattern = self.match
        if " " in pattern:
            want_method, _, pattern = pattern.partition(" ")
            if want_method.upper() not in ("*", method.upper()):
                return False
        return fnmatch.fnmatchcase(path, pattern)


def rule_from_mapping(index: int, data: dict[str, Any]) -> FaultRule:
    where = f"fault rule #{index + 1}"
    unknown = set(data) - set(FaultRule.__dataclass_fields__)
    if unknown:
        raise FaultConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise FaultConfigError(f"{where}: kind = {kind!r}; allowed: {', '.join(KINDS)}")
    try:
        rule = FaultRule(**data)
    except TypeError as exc:
        raise FaultConfigError(f"{where}: {exc}") from None
    if not 0.0 <= rule.probability <= 1.0:
        raise FaultConfigError(f"{where}: probability = {rule.probability}; allowed 0..1")
    if rule.every < 0 or rule.latency_ms < 0:
        raise FaultConfigError(f"{where}: every and latency_ms must be >= 0")
    if not 100 <= rule.status <= 599:
        raise FaultConfigError(f"{where}: status = {rule.status}; allowed 100..599")
    return rule


@dataclass
class FaultProfile:
    """The active rules plus what has fired, so tests compare injected with observed."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    fired: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible faults, not crypto
        self._seen: Counter[int] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, default_seed: int = 0) -> FaultProfile:
        """`default_seed` (the simulator's `--seed`) applies when the profile names none."""
        rules = data.get("rule", data.get("rules", []))
        if not isinstance(rules, list):
            raise FaultConfigError("rules must be a list of tables ([[rule]])")
        seed = data.get("seed", default_seed)
        if not isinstance(seed, int):
            raise FaultConfigError(f"seed = {seed!r}; must be an integer")
        return cls([rule_from_mapping(i, r) for i, r in enumerate(rules)], seed=seed)

    @classmethod
    def from_toml(cls, path: Path, *, default_seed: int = 0) -> FaultProfile:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FaultConfigError(f"{path}: {exc}") from None
        return cls.from_mapping(data, default_seed=default_seed)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rules": [vars(r) for r in self.rules],
            "fired": dict(self.fired),
        }

    def pick(
        self, method: str, path: str, *, authenticated: Callable[[], bool] | None = None
    ) -> list[FaultRule]:
        """Rules that fire for this request; deterministic for a given seed and request order.

        `authenticated` (asked at most once, only when a builder-fee rule matches) says whether
        the request carries a valid token: builder-fee rules neither count nor fire without one.
        """
        chosen = []
        authed: bool | None = None
        with self._lock:
            for i, rule in enumerate(self.rules):
                if not rule.matches(method, path):
                    continue
                if rule.kind == "builder_fee" and authenticated is not None:
                    if authed is None:
                        authed = authenticated()
                    if not authed:
                        continue
                self._seen[i] += 1
                if rule.every:
                    hit = self._seen[i] % rule.every == 0
                else:
                    hit = self._rng.random() < rule.probability
                if hit:
                    chosen.append(rule)
                    self.fired[rule.kind] += 1
        return chosen


async def _json(
    send: Send, status: int, body: dict[str, Any], headers: list[Any] | None = None
) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class ConnectionCut(Exception):
    """Raised once a fault has sent half a response: uvicorn then closes the connection."""


async def _cut(send: Send) -> None:
    """Promise a body and send a fragment: the server closes the connection mid-response."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"ok":', "more_body": True})
    raise ConnectionCut


class ExpectedDisconnects(logging.Filter):
    """uvicorn logs every exception out of the app with a traceback; a cut the fault profile
    asked for, or a client that went away mid-request (a killed bot), is expected: one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionCut):
            record.msg = "fault: connection cut mid-response"
        elif isinstance(exc, ClientDisconnect):
            record.msg = "client disconnected mid-request"
        else:
            return True
        record.args, record.exc_info, record.exc_text = (), None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return record.levelno >= logging.getLogger(record.name).getEffectiveLevel()


def quiet_expected_disconnects() -> None:
    """Install `ExpectedDisconnects` on uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ExpectedDisconnects) for f in logger.filters):
        logger.addFilter(ExpectedDisconnects())


class FaultMiddleware:
    """Applies the profile's rules in front of the app; control paths (`/__sim/*`) are exempt.

    `authenticated(authorization_header)` tells whether a request carries a valid token (for
    builder-fee rules); without it every request counts as authenticated.
    """

    def __init__(
        self,
        app: ASGIApp,
        profile: Callable[[], FaultProfile],
        *,
        on_token_expiry: Callable[[], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        authenticated: Callable[[str | None], bool] | None = None,
    ) -> None:
        self.app = app
        self.profile = profile
        self.on_token_expiry = on_token_expiry
        self.sleep = sleep
        self.authenticated = authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/__sim"):
            await self.app(scope, receive, send)
            return
        check = self.authenticated
        authed = None
        if check is not None:

            def authed() -> bool:
                header = next(
                    (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"),
                    None,
                )
                return check(header)

        rules = self.profile().pick(scope["method"], scope["path"], authenticated=authed)
        positions = is_positions_path(scope["path"])
        lose_response = False
        for rule in rules:
            if rule.kind == "latency":
                await self.sleep(rule.latency_ms / 1000)
            elif rule.kind == "token_expiry":
                self.on_token_expiry()
            elif rule.kind == "rate_limit":
                await _json(
                    send,
                    429,
                    {"ok": False, "error": "Too Many Requests"}
                    if positions
                    else {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"},
                    [(b"retry-after", rule.retry_after.encode())],
                )
                return
            elif rule.kind == "status":
                await _json(send, rule.status, _status_body(rule.status, positions=positions))
                return
            elif rule.kind == "builder_fee":
                body = (
                    {"ok": False, "error": BUILDER_FEE_MESSAGE}
                    if positions
                    else {"statusCode": 400, "message": BUILDER_FEE_MESSAGE, "error": "Bad Request"}
                )
                await _json(send, 400, body)
                return
            elif rule.kind == "drop":
                await _cut(send)
            elif rule.kind == "lost_response":
                lose_response = True
        if not lose_response:
            await self.app(scope, receive, send)
            return

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                await _cut(send)

        await self.app(scope, receive, swallow)


def _status_body(status: int, *, positions: bool) -> dict[str, Any]:
    """An injected error status in the layer's shape; 5xx is the documented `Backend error`."""
    if not positions:
        return {"statusCode": status, "message": "Backend error"}
    if status >= 500:
        return {"ok": False, "error": "Backend error"}
    if status == 404:
        return {"ok": False, "error": "Not found"}
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"ok": False, "error": phrase}
