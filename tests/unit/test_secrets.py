"""The key, the JWT and the login signature appear nowhere: settings dumps, errors, DEBUG logs."""

from __future__ import annotations

import io
import logging
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import bot.api.errors as errors_mod
from bot.api.errors import ApiError
from bot.api.models import QuickSessionRequest
from bot.logs import setup_logging
from bot.settings import Settings, load_private_key
from tests.conftest import TEST_KEY


def every_error_type() -> list[type[ApiError]]:
    return [v for v in vars(errors_mod).values() if isinstance(v, type) and issubclass(v, ApiError)]


async def test_key_token_and_signature_never_leak(
    settings: Settings,
    venue: Any,
    client_for: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    setup_logging("DEBUG", "json", stream=stream)
    key = load_private_key(settings)
    log = logging.getLogger("leak-test")

    venue.on(
        "GET", "/user/profile", lambda r: httpx.Response(200 if venue.authed(r) else 401, json={})
    )
    venue.on(
        "POST", "/trading-sessions", lambda r: httpx.Response(500, text=r.headers["authorization"])
    )
    rendered: list[str] = []
    async with client_for() as client:
        await client.profile()
        token = client.auth.current.token
        signature = __import__("json").loads(venue.last("POST", "/auth/evm/verify").content)[
            "signature"
        ]
        # careless code paths must still be scrubbed
        log.debug("key=%s token=%s sig=%s", key.get_secret_value(), token, signature)
        log.debug(f"auth header: Bearer {token}")
        try:
            await client.create_quick_session(
                QuickSessionRequest(budget=Decimal(10), profit_target=Decimal(1), asset_index=0)
            )
        except ApiError as exc:
            log.exception("create failed")
            rendered.append(str(exc))
        rendered.append(repr(client.auth))
        rendered.append(repr(client.auth.current))

    for cls in every_error_type():
        try:
            raise cls("boom", endpoint="/x", method="GET", status=500, body="{}")
        except ApiError as exc:
            rendered.append(str(exc) + "".join(traceback.format_exception(exc)))

    rendered += [repr(settings), str(settings), str(settings.redacted()), repr(key), str(key)]
    haystack = "\n".join(rendered) + stream.getvalue() + "".join(capsys.readouterr())
    assert stream.getvalue().count("\n") >= 3, "the DEBUG log must actually have been written"
    for secret in (TEST_KEY, TEST_KEY[2:], token, signature, signature[2:]):
        assert secret not in haystack
    assert "***" in stream.getvalue()
