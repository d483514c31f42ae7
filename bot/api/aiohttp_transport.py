"""An httpx transport that sends over aiohttp: the same client, a third of the CPU per request.

The daemon polls a few endpoints every tick; through httpcore (anyio, h11) one GET costs ~0.8 ms
of CPU, through aiohttp (C parser, native asyncio) ~0.2 ms (bench/RESULTS.md, "Daemon").
`httpx.AsyncClient` stays in front (redirects, decoding, the Response type every caller reads);
only the wire changes.

What matters most here is how failures are named, because `bot.api.transport` decides from the
exception class whether a request that moves money may have reached the server: only a failure
to *establish* a connection (refused, DNS, TLS handshake, no free connection in time) becomes
`httpx.ConnectError`/`ConnectTimeout` ("never sent"). Everything after that point (a dropped
connection, a read timeout, a truncated or unparseable answer, anything unrecognised) becomes a
read-side error, i.e. "may have been applied". aiohttp's own resend of a request on a reused
connection that turned out dead is switched off: whether to resend is the caller's decision.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import httpx


def map_exception(exc: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp failure; anything not known to be "never sent" reads as
    "sent, answer lost" (the safe side for a request that moves money)."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # no connection (or free one) in time
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake, proxy
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.SocketTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientResponseError):  # the answer is not HTTP we can read
        return httpx.RemoteProtocolError(message)
    return httpx.ReadError(message)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over one aiohttp session, created on first use inside the running loop."""

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._limits = limits or httpx.Limits()
        self._ssl: ssl.SSLContext | bool = httpx.create_ssl_context() if verify is True else verify
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        limits = self._limits
        connector = aiohttp.TCPConnector(  # keeps idle connections up to `limit`, no separate cap
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry or 5.0,
            ssl=self._ssl,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies (we send none)
            auto_decompress=False,  # httpx decodes, and names a broken encoding DecodingError
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None or self._session.closed:
            self._session = self._open()
        t = request.extensions.get("timeout", {})
        connect, read, write, pool = (t.get(k) for k in ("connect", "read", "write", "pool"))
        timeout = aiohttp.ClientTimeout(
            # aiohttp bounds the wait for a free connection and the handshake together
            connect=None if connect is None or pool is None else max(connect, pool),
            sock_connect=connect,
            sock_read=read,
            # aiohttp has no write timeout: the whole exchange is bounded instead
            total=None if None in (connect, read, write, pool) else connect + read + write + pool,
        )
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,  # httpx.AsyncClient follows them, or not
                timeout=timeout,
                compress=None,
            ) as answer:
                content = await answer.read()
                status = answer.status
                raw_headers = answer.raw_headers
                reason = answer.reason
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise map_exception(exc) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status, headers=raw_headers, content=content, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
