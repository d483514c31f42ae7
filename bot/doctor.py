"""`alura-bot doctor`: check config, key, reachability, clock skew and a full login round trip.

Each check is independent and reports ok/warn/fail with a one-line detail, so an operator sees
every problem at once instead of fixing them one run at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

from pydantic import SecretStr

from bot.api.alura import AluraClient
from bot.api.auth import address_of
from bot.api.errors import ApiError
from bot.settings import ConfigError, Settings, load_private_key


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


def check_key(settings: Settings) -> tuple[Check, SecretStr | None]:
    try:
        key = load_private_key(settings)
    except ConfigError as exc:
        return Check("private key", Status.FAIL, "; ".join(exc.problems)), None
    address = address_of(key)
    if settings.wallet_address and settings.wallet_address.lower() != address.lower():
        return (
            Check(
                "private key",
                Status.WARN,
                f"key derives {address} but wallet_address is {settings.wallet_address}: "
                "the signing key is not the account address (see NOTES: agent vs account)",
            ),
            key,
        )
    return Check("private key", Status.OK, f"loaded; address {address}"), key


async def run_checks(
    settings: Settings,
    *,
    client_factory: Callable[[Settings, SecretStr | None], AluraClient] | None = None,
    now: Callable[[], float] = time.time,
) -> list[Check]:
    checks = [
        Check("config", Status.OK, f"mode={settings.mode.value} base_url={settings.base_url}")
    ]
    key_check, key = check_key(settings)
    checks.append(key_check)
    factory = client_factory or (lambda s, k: AluraClient.from_settings(s, k))
    async with factory(settings, key) as client:
        try:
            started = now()
            resp = await client.transport.request("GET", "/health")
            elapsed = (now() - started) * 1000
            checks.append(
                Check(
                    "reachability", Status.OK, f"GET /health {resp.status_code} in {elapsed:.0f} ms"
                )
            )
        except ApiError as exc:
            checks.append(Check("reachability", Status.FAIL, str(exc)))
            checks.append(Check("clock skew", Status.SKIP, "server not reachable"))
            checks.append(Check("auth round trip", Status.SKIP, "server not reachable"))
            return checks
        checks.append(_skew_check(resp.headers.get("date"), now(), settings.max_clock_skew_s))
        if client.auth is None:
            checks.append(Check("auth round trip", Status.SKIP, "no private key"))
            return checks
        try:
            info = await client.auth.login()
            left = info.expires_at - now()
            checks.append(
                Check(
                    "auth round trip",
                    Status.OK,
                    f"challenge/sign/verify ok for {info.address}; token valid {left / 3600:.1f} h",
                )
            )
        except ApiError as exc:
            checks.append(Check("auth round trip", Status.FAIL, str(exc)))
    return checks


def _skew_check(date_header: str | None, local: float, limit: float) -> Check:
    if not date_header:
        return Check("clock skew", Status.WARN, "server sent no Date header")
    try:
        server = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Check("clock skew", Status.WARN, f"unparseable Date header {date_header!r}")
    skew = local - server
    status = Status.OK if abs(skew) <= limit else Status.FAIL
    return Check("clock skew", status, f"{skew:+.1f} s against the server (limit ±{limit:g} s)")
