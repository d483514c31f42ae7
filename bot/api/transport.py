"""The one HTTP transport of the process: timeouts, rate limit, auth header, retries, error mapping.

Reads (GET) are retried on 429/5xx/transport errors with exponential backoff and jitter, honouring
Retry-After, bounded in attempts and total time (tenacity). No wait ever ends past the total budget
(`retry_total_s`, measured on the transport's clock) nor exceeds `retry_max_wait_s`: a Retry-After
longer than that ends the retrying and the `RateLimited` error (with its `retry_after`) is raised
for the caller to schedule around. Requests that open or close things or
move funds are never retried once they may have reached the server: an ambiguous failure becomes
`OutcomeUnknown` and the daemon reconciles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from bot import __version__, safe_json
from bot.api.errors import (
    ApiError,
    BadResponse,
    BuilderFeeApprovalFailed,
    Conflict,
    DuplicateAsset,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationFailed,
    parse_retry_after,
    preview,
)
from bot.settings import HttpSettings

USER_AGENT = f"alura-bot/{__version__}"
RETRYABLE = (RateLimited, ServerError, TransportError)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What a metrics hook sees of one HTTP exchange: bounded labels only (template, never ids)."""

    method: str
    endpoint: str
    status: int | None
    duration_s: float
    error_kind: str | None
    error_message: str | None = None


RequestHook = Callable[[RequestRecord], None]


class TokenProvider(Protocol):
    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


def server_message(body: Any) -> tuple[str, list[str]]:
    """The human message of an error body: NestJS `message` (str or list) or `{ok:false, error}`."""
    if isinstance(body, dict):
        msg = body.get("message", body.get("error"))
        if isinstance(msg, list):
            items = [str(m) for m in msg]
            return "; ".join(items), items
        if msg is not None:
            return str(msg), [str(msg)]
    return "", []


def error_for(
    status: int, body_text: str, headers: httpx.Headers, *, endpoint: str, method: str
) -> ApiError:
    """Map a non-2xx answer to the ApiError tree, by status and by the documented messages."""
    try:
        body: Any = safe_json.loads(body_text) if body_text else None
    except ValueError:
        body = None
    message, messages = server_message(body)
    kw: dict[str, Any] = {
        "endpoint": endpoint,
        "method": method,
        "status": status,
        "body": preview(body_text),
    }
    if "builder fee approval failed" in message.lower():
        return BuilderFeeApprovalFailed(message, **kw)
    if "duplicate asset index" in message.lower():
        return DuplicateAsset(message, messages=messages, **kw)
    if status == 401:
        return Unauthorized(message or "unauthorized", **kw)
    if status == 404:
        return NotFound(message or "not found", **kw)
    if status == 409:
        return Conflict(message or "conflict", **kw)
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return RateLimited(message or "rate limited", retry_after=retry_after, **kw)
    if 400 <= status < 500:
        return ValidationFailed(message or f"HTTP {status}", messages=messages, **kw)
    return ServerError(message or f"HTTP {status}", **kw)


def _wait_for(fallback: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """Honour the server's Retry-After when it gave one; otherwise exponential backoff + jitter.

    The server's value is returned as given; `_StopBeforeBudget` then refuses to sleep it when it
    does not fit the retry budget, so the caller gets the `RateLimited` error instead.
    """

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return exc.retry_after
        return fallback(state)

    return wait


class _StopBeforeBudget(stop_base):
    """Stop instead of sleeping when the upcoming wait would overrun the retry budget.

    Like tenacity's `stop_before_delay`, but on the transport's injectable clock (so a slow server
    counts and tests need no real time), and also refusing any single wait above `max_wait_s` (a
    Retry-After of an hour is not something a read should sit through). Relies on tenacity
    computing the wait before consulting stop (`upcoming_sleep`, tenacity >= 8.3).
    """

    def __init__(
        self, started: float, total_s: float, max_wait_s: float, clock: Callable[[], float]
    ) -> None:
        self.started = started
        self.total_s = total_s
        self.max_wait_s = max_wait_s
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep
        if upcoming > self.max_wait_s:
            return True
        elapsed = self.clock() - self.started
        return elapsed >= self.total_s or elapsed + upcoming > self.total_s


class Transport:
    """Owns the process's single `httpx.AsyncClient`; every API client sends through it.

    A second service (the positions API, on its own host) gets its own Transport from
    `for_service`: its own rate limit and Retry-After hold, on the same client and pool."""

    def __init__(
        self,
        base_url: str,
        settings: HttpSettings | None = None,
        *,
        http_transport: httpx.AsyncBaseTransport | None = None,
        hooks: list[RequestHook] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        s = self.settings
        self.base_url = base_url.rstrip("/")
        self.hooks: list[RequestHook] = list(hooks or [])
        self.token_provider: TokenProvider | None = None
        self._sleep = sleep
        self._monotonic = monotonic
        self._quiet_until = 0.0
        self._urls: dict[str, httpx.URL] = {}
        self._limiter = AsyncLimiter(s.rate_limit_burst, s.rate_limit_burst / s.rate_limit_per_s)
        self._owns_client = client is None
        limits = httpx.Limits(
            max_connections=s.max_connections,
            max_keepalive_connections=s.max_keepalive_connections,
        )
        if http_transport is None and client is None and s.backend == "aiohttp":
            from bot.api.aiohttp_transport import AiohttpTransport

            http_transport = AiohttpTransport(limits=limits)
        self._client = client or httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(
                connect=s.connect_timeout_s,
                read=s.read_timeout_s,
                write=s.write_timeout_s,
                pool=s.pool_timeout_s,
            ),
            limits=limits,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=http_transport,
            follow_redirects=True,
        )

    def for_service(self, base_url: str) -> Transport:
        """A transport for another service through this one's client (URLs are absolute)."""
        return Transport(
            base_url,
            self.settings,
            hooks=self.hooks,
            sleep=self._sleep,
            monotonic=self._monotonic,
            client=self._client,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _absolute(self, url: str) -> httpx.URL:
        """The parsed absolute URL, kept: a daemon asks for the same few every tick, and httpx
        parsing and joining a relative one (and an empty params dict) costs ~0.13 ms a request."""
        found = self._urls.get(url)
        if found is None:
            if len(self._urls) >= 256:
                self._urls.clear()
            found = self._urls[url] = httpx.URL(self.base_url + url)
        return found

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        template: str,
        *,
        path: dict[str, str | int] | None = None,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        auth: bool = False,
        moves_money: bool = False,
    ) -> httpx.Response:
        """Send one logical request; returns a 2xx response or raises an ApiError."""
        url = template.format(**{k: quote(str(v), safe="") for k, v in (path or {}).items()})
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        if method.upper() != "GET":
            return await self._authed(method, template, url, clean, json_body, auth, moves_money)
        s = self.settings
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            stop=stop_after_attempt(s.retry_attempts)
            | _StopBeforeBudget(
                self._monotonic(), s.retry_total_s, s.retry_max_wait_s, self._monotonic
            ),
            wait=_wait_for(wait_exponential_jitter(multiplier=0.5, max=s.retry_max_wait_s)),
            sleep=self._retry_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._authed(method, template, url, clean, None, auth, False)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _authed(
        self,
        method: str,
        template: str,
        url: str,
        params: dict[str, Any],
        json_body: Any,
        auth: bool,
        moves_money: bool,
    ) -> httpx.Response:
        """One exchange; with auth, a 401 triggers exactly one refresh and one resend."""
        if not auth:
            return await self._once(method, template, url, params, json_body, None, moves_money)
        if self.token_provider is None:
            raise Unauthorized("no credentials configured", endpoint=template, method=method)
        token = await self.token_provider.token()
        try:
            return await self._once(method, template, url, params, json_body, token, moves_money)
        except Unauthorized:
            self.token_provider.invalidate(token)
        token = await self.token_provider.token()
        return await self._once(method, template, url, params, json_body, token, moves_money)

    def _hold_off(self, seconds: float) -> None:
        """A 429's Retry-After speaks for the whole server: no request of this process goes out
        before it has passed (capped at `retry_max_wait_s`, so a close is never held for hours)."""
        until = self._monotonic() + min(seconds, self.settings.retry_max_wait_s)
        self._quiet_until = max(self._quiet_until, until)

    async def _retry_sleep(self, seconds: float) -> None:
        """The retry's own wait (the Retry-After itself, when one came) serves the quiet time,
        but only up to where it ends: a later 429 seen by another request while this one slept
        still holds everything back."""
        served_until = self._monotonic() + seconds
        await self._sleep(seconds)
        if self._quiet_until <= served_until:
            self._quiet_until = min(self._quiet_until, self._monotonic())

    async def _respect_retry_after(self) -> None:
        wait = self._quiet_until - self._monotonic()
        if wait > 0:
            await self._sleep(wait)

    async def _once(
        self,
        method: str,
        template: str,
        url: str,
        params: dict[str, Any],
        json_body: Any,
        token: str | None,
        moves_money: bool,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        await self._respect_retry_after()
        await self._limiter.acquire()
        started = self._monotonic()
        status: int | None = None
        error: ApiError | None = None
        try:
            try:
                response = await self._client.request(
                    method, self._absolute(url), params=params or None, json=json_body,
                    headers=headers,
                )  # fmt: skip
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error = TransportError(
                    f"could not connect to {self.base_url}: {type(exc).__name__}",
                    endpoint=template,
                    method=method,
                )
                raise error from None
            except (httpx.TransportError, httpx.DecodingError, httpx.TooManyRedirects) as exc:
                # an unreadable body or a redirect loop is as good as no answer at all
                cls = OutcomeUnknown if moves_money else TransportError
                error = cls(
                    f"no answer ({type(exc).__name__}); the request may have been applied"
                    if moves_money
                    else f"transport failure: {type(exc).__name__}",
                    endpoint=template,
                    method=method,
                )
                raise error from None
            status = response.status_code
            if status >= 300:
                error = error_for(
                    status, response.text, response.headers, endpoint=template, method=method
                )
                if isinstance(error, RateLimited) and error.retry_after:
                    self._hold_off(error.retry_after)
                if moves_money and isinstance(error, ServerError):
                    error = OutcomeUnknown(
                        f"server error {status} on a request that moves money; outcome unknown",
                        endpoint=template,
                        method=method,
                        status=status,
                        body=error.body,
                    )
                raise error
            return response
        finally:
            record = RequestRecord(
                method=method.upper(),
                endpoint=template,
                status=status,
                duration_s=self._monotonic() - started,
                error_kind=error.kind if error else None,
                error_message=error.message if error else None,
            )
            for hook in self.hooks:
                hook(record)


def parse_json(response: httpx.Response, *, endpoint: str) -> Any:
    """The JSON body of a 2xx answer, or BadResponse showing what came instead."""
    try:
        return safe_json.loads(response.content)  # not response.json(): bounded nesting
    except ValueError:
        raise BadResponse(
            "response is not JSON",
            endpoint=endpoint,
            method=response.request.method,
            status=response.status_code,
            body=preview(response.text),
        ) from None
