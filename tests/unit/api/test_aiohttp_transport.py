"""The aiohttp wire under httpx: failures named as "never sent" only when nothing was sent.

Each scenario runs on a real loopback socket against a scripted server, through the project's
`Transport`, on both backends: the classification must not depend on which one carries the bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from unittest.mock import Mock

import aiohttp
import httpx
import pytest

from bot.api.aiohttp_transport import AiohttpTransport, map_exception
from bot.api.errors import OutcomeUnknown, TransportError
from bot.api.transport import Transport
from bot.settings import HttpSettings

BACKENDS = ["aiohttp", "httpcore"]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
"""Gets each request's bytes; returns whether to keep the connection for another request."""


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


class Venue:
    """A scripted HTTP server on loopback that counts the requests that reached it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                self.requests.append(request)
                self.arrived.set()
                if not await self.handler(reader, writer, request):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def venue(handler: Handler) -> AsyncIterator[Venue]:
    v = Venue(handler)
    server = await asyncio.start_server(v._serve, "127.0.0.1", 0)
    v.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield v
    finally:
        server.close()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    return head.encode() + b"\r\n" + body


async def ok(reader: Any, writer: asyncio.StreamWriter, request: bytes) -> bool:
    writer.write(answer(200, b'{"ok": true}', {"content-type": "application/json"}))
    await writer.drain()
    return True


async def hang_up(reader: Any, writer: Any, request: bytes) -> bool:
    return False


async def never_answer(reader: Any, writer: Any, request: bytes) -> bool:
    await asyncio.Event().wait()
    return False


async def truncated(reader: Any, writer: asyncio.StreamWriter, request: bytes) -> bool:
    writer.write(answer(200, b'{"ok": true}')[:-5])
    await writer.drain()
    return False


async def garbage(reader: Any, writer: asyncio.StreamWriter, request: bytes) -> bool:
    writer.write(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
    await writer.drain()
    return False


def transport(url: str, backend: str, **http: Any) -> Transport:
    settings = HttpSettings(backend=backend, retry_attempts=1, **http)  # type: ignore[arg-type]
    return Transport(url, settings)


async def outcome(t: Transport) -> Any:
    """What a session create (a request that moves money) comes to."""
    try:
        async with t:
            return await t.request("POST", "/trading-sessions", json_body={}, moves_money=True)
    except Exception as exc:
        return exc


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_answer_arrives_whole(backend: str) -> None:
    async with venue(ok) as v, transport(v.url, backend) as t:
        response = await t.request("GET", "/health")
    assert response.status_code == 200 and json.loads(response.content) == {"ok": True}
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refused_connection_is_never_sent(backend: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = await outcome(transport(f"http://127.0.0.1:{port}", backend))
    assert type(result) is TransportError and "could not connect" in str(result), repr(result)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("handler", [hang_up, truncated, garbage], ids=lambda h: h.__name__)
async def test_a_lost_answer_to_money_is_outcome_unknown(backend: str, handler: Handler) -> None:
    async with venue(handler) as v:
        result = await outcome(transport(v.url, backend))
    assert isinstance(result, OutcomeUnknown), repr(result)
    assert len(v.requests) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_silent_server_is_outcome_unknown_after_the_read_timeout(backend: str) -> None:
    async with venue(never_answer) as v:
        result = await outcome(transport(v.url, backend, read_timeout_s=0.2))
    assert isinstance(result, OutcomeUnknown), repr(result)
    assert len(v.requests) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_no_free_connection_in_time_is_never_sent(backend: str) -> None:
    """One connection allowed and held by a request the server sits on: the next request
    never gets a connection, so it never left and may be retried."""
    async with venue(never_answer) as v:
        t = transport(
            v.url,
            backend,
            max_connections=1,
            pool_timeout_s=0.2,
            connect_timeout_s=0.2,
            read_timeout_s=5,
        )
        async with t:
            first = asyncio.ensure_future(t.request("GET", "/health"))
            await v.arrived.wait()
            try:
                await t.request("POST", "/trading-sessions", json_body={}, moves_money=True)
            except Exception as exc:
                result: Any = exc
            first.cancel()
    assert type(result) is TransportError and "could not connect" in str(result), repr(result)
    assert len(v.requests) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_a_request_on_a_dead_kept_alive_connection_is_not_resent(method: str) -> None:
    """aiohttp resends "idempotent" methods (PUT, DELETE included) once when a reused
    connection turns out dead; a resend of something that moves money is the caller's call."""
    served = 0

    async def once_then_hang_up(reader: Any, writer: asyncio.StreamWriter, request: bytes) -> bool:
        nonlocal served
        served += 1
        if served == 1:
            return await ok(reader, writer, request)
        return False

    async with (
        venue(once_then_hang_up) as v,
        httpx.AsyncClient(transport=AiohttpTransport()) as client,
    ):
        assert (await client.get(v.url + "/health")).status_code == 200
        with pytest.raises(httpx.TransportError) as caught:
            await client.request(method, v.url + "/trading-sessions", content=b"{}")
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert len(v.requests) == 2


async def test_gzip_is_decoded_by_httpx_and_a_broken_one_named() -> None:
    body = gzip.compress(b'{"a": 1}')
    answers = iter([answer(200, body, {"content-encoding": "gzip"}), answer(200, b"{not gzip")])

    async def scripted(reader: Any, writer: asyncio.StreamWriter, request: bytes) -> bool:
        raw = next(answers)
        if b"not gzip" in raw:
            raw = raw.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n", 1)
        writer.write(raw)
        await writer.drain()
        return True

    async with venue(scripted) as v, httpx.AsyncClient(transport=AiohttpTransport()) as client:
        assert (await client.get(v.url)).json() == {"a": 1}
        with pytest.raises(httpx.DecodingError):
            await client.get(v.url)


def _exc(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, aiohttp.ClientConnectorError):
        return cls(Mock(), OSError(111, "refused"))
    if issubclass(cls, aiohttp.ClientResponseError):
        return cls(Mock(real_url="http://x"), ())
    return cls("boom")


@pytest.mark.parametrize(
    ("raised", "named"),
    [
        (aiohttp.ClientConnectorError, httpx.ConnectError),
        (aiohttp.ClientConnectorDNSError, httpx.ConnectError),
        (aiohttp.ClientConnectorCertificateError, httpx.ConnectError),
        (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
        (asyncio.TimeoutError, httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError, httpx.ReadError),
        (aiohttp.ClientOSError, httpx.ReadError),
        (aiohttp.ClientConnectionResetError, httpx.ReadError),
        (aiohttp.ClientPayloadError, httpx.ReadError),
        (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
        (aiohttp.ClientError, httpx.ReadError),
    ],
    ids=lambda c: c.__name__,
)
def test_only_connection_failures_are_named_never_sent(
    raised: type[BaseException], named: type[Exception]
) -> None:
    mapped = map_exception(_exc(raised))
    assert type(mapped) is named
    never_sent = isinstance(mapped, httpx.ConnectError | httpx.ConnectTimeout)
    assert never_sent == issubclass(
        raised, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
    )
