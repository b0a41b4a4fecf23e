"""A lean HTTP/1.1 keep-alive client for load generation.

General clients (httpx, aiohttp) spend a few hundred microseconds of CPU per request; on a
2-core machine shared with the servers under test that would make the generator the bottleneck.
Here a request is a pre-encoded byte string written to a connection, and the answer is parsed by
``httptools`` (the parser Uvicorn uses): only the status and the body are kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools


@dataclass(frozen=True, slots=True)
class Request:
    """One request, encoded once; ``operation`` names it in the results."""

    operation: str
    origin: str  # http://host:port
    raw: bytes


def encode_request(
    operation: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_type: str = "application/json",
) -> Request:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Request(operation, f"{parts.scheme}://{parts.netloc}", head + body)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes


class ConnectionClosedError(ConnectionError):
    """The server closed the connection before answering."""


@dataclass(eq=False)
class _Connection(asyncio.Protocol):
    transport: asyncio.Transport | None = None
    answer: asyncio.Future[Response] | None = None
    received_any: bool = False
    _body: list[bytes] = field(default_factory=list[bytes])
    _parser: httptools.HttpResponseParser | None = None
    closed: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # TCP: a read-write transport
        self._parser = httptools.HttpResponseParser(self)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        assert self._parser is not None  # noqa: S101
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"unparsable answer: {error}"))
            self.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None  # noqa: S101
        answer, self.answer = self.answer, None
        response = Response(self._parser.get_status_code(), b"".join(self._body))
        self._body.clear()
        if answer is not None and not answer.done():
            answer.set_result(response)
        if not self._parser.should_keep_alive():
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionClosedError(str(exc) if exc else "closed by the server"))

    def _fail(self, error: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def send(self, raw: bytes) -> Response:
        assert self.transport is not None  # noqa: S101
        self.answer = asyncio.get_running_loop().create_future()
        self.received_any = False
        self.transport.write(raw)
        return await self.answer


class ConnectionPool:
    """At most ``size`` keep-alive connections to one origin; callers wait for a free one."""

    def __init__(self, origin: str, size: int) -> None:
        parts = urlsplit(origin)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._free: asyncio.LifoQueue[_Connection | None] = asyncio.LifoQueue()
        for _ in range(size):
            self._free.put_nowait(None)  # a slot; connected on first use
        self._open: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        _, protocol = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port
        )
        self._open.add(protocol)
        return protocol

    async def send(self, raw: bytes) -> Response:
        connection = await self._free.get()
        try:
            reused = connection is not None and not connection.closed
            if connection is None or connection.closed:
                connection = await self._connect()
            try:
                return await connection.send(raw)
            except ConnectionClosedError:
                # A kept-alive connection the server closed while idle: retry once on a new one.
                if not reused or connection.received_any:
                    raise
                self._open.discard(connection)
                connection = await self._connect()
                return await connection.send(raw)
        except BaseException:
            if connection is not None:
                connection.close()
                self._open.discard(connection)
            connection = None
            raise
        finally:
            self._free.put_nowait(connection)

    def close(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()


class Client:
    """One pool per origin, all of the same size."""

    def __init__(self, connections_per_origin: int) -> None:
        self.size = connections_per_origin
        self._pools: dict[str, ConnectionPool] = {}

    async def send(self, request: Request) -> Response:
        pool = self._pools.get(request.origin)
        if pool is None:
            pool = self._pools[request.origin] = ConnectionPool(request.origin, self.size)
        return await pool.send(request.raw)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
