"""The ApiError tree: every failed venue call becomes one of these, never a bare KeyError.

Messages carry the endpoint template, the status and a truncated body so an operator can act on
them; they never carry a token, a signature or a key (callers pass only bodies, which hold none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from bot.logs import scrub

BODY_PREVIEW_CHARS = 300


def preview(body: str | bytes | None, limit: int = BODY_PREVIEW_CHARS) -> str:
    """A single-line, bounded, secret-scrubbed view of a response body for errors and logs."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = scrub(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


class ApiError(Exception):
    """Base of every error raised by the API clients."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        method: str = "",
        status: int | None = None,
        body: str = "",
    ) -> None:
        self.message = scrub(message)  # shown on its own too (cli_positions prints it)
        self.endpoint = endpoint
        self.method = method
        self.status = status
        self.body = scrub(body)
        super().__init__(scrub(self._render()))

    def _render(self) -> str:
        where = f"{self.method} {self.endpoint}".strip()
        parts = [self.message]
        if where:
            parts.append(f"[{where}" + (f" -> {self.status}]" if self.status else "]"))
        if self.body:
            parts.append(f"body: {self.body}")
        return " ".join(parts)

    @property
    def kind(self) -> str:
        """Bounded label for metrics (`alura_bot_api_errors_total{kind}`)."""
        return type(self).__name__


class Unauthorized(ApiError):
    """401 after one refresh: the wallet could not be (re)authenticated."""


class ValidationFailed(ApiError):
    """400: the server refused the request; `messages` holds its `message` (string or list)."""

    def __init__(self, message: str, *, messages: list[str] | None = None, **kw: object) -> None:
        self.messages = [scrub(m) for m in messages or [message]]
        super().__init__(message, **kw)  # type: ignore[arg-type]


class DuplicateAsset(ValidationFailed):
    """`Duplicate asset index`: one active session per asset already exists — reconcile, adopt."""


# The positions API's documented 400 messages (user-positions-api.md error table, NOTES.md), one
# class each, so callers can tell a configuration problem (no wallet) from a bug in a request
# body without parsing message text. The positions client maps them by the server's message.


class WalletRequired(ValidationFailed):
    """`wallet_address is required`: a list or stats read went out without the wallet."""


class MissingFields(ValidationFailed):
    """`Missing required fields`: an open's body lacks a required field (proxy layer)."""


class InvalidNumeric(ValidationFailed):
    """`INVALID_NUMERIC`: `amount` or `multiplier_bps` cannot be read as a number (proxy layer)."""


class BadJson(ValidationFailed):
    """`BAD_JSON`: the body was empty or not a JSON object (proxy layer)."""


class PositionIdRequired(ValidationFailed):
    """`position_id required`: a close without the position's id (proxy layer)."""


class UnsupportedAction(ValidationFailed):
    """`Unsupported action`: the PATCH form was sent an action other than `close`."""


class InvalidArgs(ValidationFailed):
    """`INVALID_ARGS`: the backend refused an argument (wallet, amount, team, id; NOTES.md)."""


class BuilderFeeApprovalFailed(ApiError):
    """Hyperliquid's own rate limit surfacing through Alura: a temporary failure of one request."""


class RateLimited(ApiError):
    """429, with the server's Retry-After in seconds when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class NotFound(ApiError):
    """404 from a layer that means it (the positions proxy maps its 404s to empty answers)."""


class Conflict(ApiError):
    """409: a concurrent change won (e.g. an optimistic-lock check on a position close)."""


class ServerError(ApiError):
    """5xx, or any status we have no better name for."""


class TransportError(ApiError):
    """The request never produced a response: connect error, reset, timeout before sending."""


class BadResponse(ApiError):
    """A 2xx answer whose body is not what the contract says (not JSON, wrong shape)."""


class OutcomeUnknown(ApiError):
    """A request that moves money may have reached the server and no answer came back.

    Never retried blindly: the daemon reconciles against the venue before doing anything else.
    """


def outcome_unknown(bad: BadResponse) -> OutcomeUnknown:
    """The error for a 2xx answer that cannot be read, to a request that moves money.

    The server accepted something, so the request may well have been applied: recording it as
    failed would invite a second open or close. Endpoint, status and body preview are kept.
    """
    return OutcomeUnknown(
        f"unreadable 2xx answer to a request that moves money ({bad.message}); outcome unknown",
        endpoint=bad.endpoint,
        method=bad.method,
        status=bad.status,
        body=bad.body,
    )


class ClientValidationError(ApiError):
    """A request the client refused to send because it breaks a documented constraint."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: accepts delta-seconds and HTTP-date (RFC 9110), else None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
