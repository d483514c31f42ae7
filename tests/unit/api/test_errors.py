"""Each documented error message and status maps to its typed error."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from bot.api.errors import (
    ApiError,
    BuilderFeeApprovalFailed,
    Conflict,
    DuplicateAsset,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    ValidationFailed,
    parse_retry_after,
)
from bot.api.transport import error_for


def mapped(status: int, body: str, headers: dict[str, str] | None = None) -> ApiError:
    return error_for(status, body, httpx.Headers(headers or {}), endpoint="/x", method="POST")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            '{"message": "Duplicate asset index: 你已为该资产打开了一个活跃的交易会话"}',
            DuplicateAsset,
        ),
        (
            400,
            '{"message": "Builder fee approval failed: HTTP 请求失败（状态码 429）"}',
            BuilderFeeApprovalFailed,
        ),
        (
            500,
            '{"message": "Builder fee approval failed: HTTP request failed (429)"}',
            BuilderFeeApprovalFailed,
        ),
        (400, '{"message": ["budget must not be less than 10"]}', ValidationFailed),
        (401, '{"message": "Unauthorized"}', Unauthorized),
        (404, '{"ok": false, "error": "Not found"}', NotFound),
        (409, '{"ok": false, "error": "CONFLICT"}', Conflict),
        (429, "Too Many Requests", RateLimited),
        (500, "<html>oops</html>", ServerError),
        (503, '{"ok": false, "error": "Backend error"}', ServerError),
    ],
)
def test_error_mapping(status: int, body: str, kind: type[ApiError]) -> None:
    err = mapped(status, body)
    assert type(err) is kind
    assert err.status == status and err.endpoint == "/x"


def test_validation_message_list_is_kept() -> None:
    err = mapped(400, '{"message": ["budget must not be less than 10", "assetIndex must be int"]}')
    assert isinstance(err, ValidationFailed)
    assert err.messages == ["budget must not be less than 10", "assetIndex must be int"]
    assert "budget must not be less than 10; assetIndex must be int" in str(err)


def test_positions_error_field_is_the_message() -> None:
    err = mapped(400, '{"ok": false, "error": "INVALID_NUMERIC"}')
    assert isinstance(err, ValidationFailed) and err.messages == ["INVALID_NUMERIC"]


def test_long_body_is_truncated_in_message() -> None:
    err = mapped(500, "x" * 5000)
    assert len(str(err)) < 500 and "5000 chars" in str(err)


def test_retry_after_seconds_and_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0
