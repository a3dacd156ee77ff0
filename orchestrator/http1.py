"""A lean HTTP/1.1 client for the ECS calls: a keep-alive pool of `asyncio.Protocol`s.

aiohttp's request machinery (a request and a response object, header multidicts, a
payload stream, a connector lookup, tracing hooks) costs ≈ 0.135 ms of CPU for a bare
signed GET, the largest share of the orchestrator's CPU at fleet scale (issue 10);
`EcsClient.server` over this pool costs 0.073 ms, its own work included
(benchmarks/client_call.py). The ECS
calls need little of it: small JSON requests to one or a few origins, answers of
a few KiB. This pool writes a request in one `write` and parses the answer from
`data_received`, without a task or a stream per request.

    ConnectFailed   the connection was never made: nothing was sent
    NoAnswer        sent, or maybe sent, and no complete answer came back

Those two are all a caller sees, so that `EcsClient` keeps deciding in one place
whether a failed request may have been acted on. What the pool does:
- one connection per request in flight, at most `limit` at once; a finished
  connection goes back to its origin's idle list (the newest is used first) and
  one idle longer than `keepalive` seconds is closed rather than reused, as aiohttp
  does; a request that must not be sent twice can ask for a connection idle less
  than `fresh_within` (a server closes idle connections when it likes, and a
  reinstall written on one it is just closing would be a needless doubt);
- bodies by Content-Length, chunked or until the close; 1xx answers skipped;
  gzip/deflate decoded though never asked for; a body over `max_body` is cut at
  `max_body + 1` bytes (the caller refuses it) and its connection closed;
- a caller cancelled while waiting aborts the connection: its answer may still come;
- TLS through `loop.create_connection(ssl=...)`, the context chosen by
  `network.ssl_context`. No proxies: the client sends through aiohttp where one is
  configured (CONNECT tunnels, proxy credentials).
"""

from __future__ import annotations

import asyncio
import math
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

__all__ = ["Answer", "ConnectFailed", "NoAnswer", "Origin", "Pool"]

MAX_HEAD_BYTES = 64 * 1024
_CRLF = b"\r\n"
_HEX_DIGITS = b"0123456789abcdefABCDEF"
# Answer deadlines are kept to this many seconds (late by at most that): one timer
# per tick for all requests due in it, not one per request, whose arming and
# cancelling in the loop's heap cost ≈ 2 µs each at fleet scale (issue 10).
DEADLINE_TICK = 0.05


class ConnectFailed(Exception):
    """The connection was not made (refused, name unknown, TLS refused, timed out)."""


class NoAnswer(Exception):
    """The request was written, or may have been, and no complete answer came."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lowercased; a repeated header's values joined by ", "
    body: bytes


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str  # "http" or "https"
    host: str  # to connect to (an IPv6 address without brackets)
    port: int
    authority: str  # the Host header: the URL's host[:port]

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.netloc.rpartition("@")[2])


class Pool:
    """Keep-alive connections per origin; `request` sends one request on one of them."""

    def __init__(
        self,
        *,
        limit: int,
        tls: ssl.SSLContext | None = None,
        keepalive: float = 15.0,
        max_body: int = 1 << 20,
        user_agent: str = "ecs-reinstall-orchestrator",
    ) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tls = tls
        self._keepalive = keepalive
        self._max_body = max_body
        self._user_agent = user_agent
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        # Tick number -> the connections whose answer is due by the end of that tick.
        self._due: dict[int, set[_Connection]] = {}
        self.connections_made = 0  # for tests and benchmarks: reuse shows here

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout: float = 10.0,
        total_timeout: float = 30.0,
        fresh_within: float | None = None,
    ) -> Answer:
        """Send one request and read its whole answer, within `total_timeout` seconds.

        `fresh_within`: reuse a connection only if it was idle at most this long, else
        open a new one (the idle ones stay for other requests). For a request that must
        not be sent twice: one written on a connection the server is just closing gets
        no answer, and could not be told from one that was acted on.
        """
        data = self._encode(origin, method, target, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total_timeout
        if self._slots.locked():  # only then a timer: the common case has a free slot
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                raise NoAnswer("timeout waiting for a free connection") from None
        else:
            await self._slots.acquire()
        try:
            conn = self._idle_connection(origin, loop.time(), fresh_within)
            if conn is None:
                conn = await self._connect(origin, min(connect_timeout, deadline - loop.time()))
            answer, reusable = await conn.exchange(data, deadline)
            if reusable:
                conn.idle_since = loop.time()
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()
            return answer
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------

    def _idle_connection(
        self, origin: Origin, now: float, fresh_within: float | None
    ) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle[-1]  # the newest: the likeliest to be alive
            if conn.closed or now - conn.idle_since >= self._keepalive:
                idle.pop()
                conn.close()
                continue
            if fresh_within is not None and now - conn.idle_since > fresh_within:
                return None  # the newest is already too old for this request
            return idle.pop()
        return None

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = None
        if origin.scheme == "https":
            if self._tls is None:  # once: loading the system's CAs takes milliseconds
                self._tls = ssl.create_default_context()
            tls = self._tls

        def factory() -> _Connection:
            return _Connection(self, self._max_body)

        hostname = origin.host if tls else None
        # Happy eyeballs (RFC 8305, as aiohttp does): a dual-stack name whose IPv6 is
        # broken connects over IPv4 after 0.25 s instead of spending the connect timeout.
        # The standard loop has it; uvloop's create_connection takes no such argument.
        if isinstance(loop, asyncio.BaseEventLoop):
            connecting = loop.create_connection(
                factory, origin.host, origin.port, ssl=tls, server_hostname=hostname,
                happy_eyeballs_delay=0.25,
            )  # fmt: skip
        else:
            connecting = loop.create_connection(
                factory, origin.host, origin.port, ssl=tls, server_hostname=hostname
            )
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                _, conn = await connecting
        except TimeoutError:
            raise ConnectFailed("ConnectionTimeoutError: connect timed out") from None
        except OSError as exc:  # refused, unreachable, no such name, TLS refused
            raise ConnectFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        self.connections_made += 1
        return conn

    def _encode(
        self, origin: Origin, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        names = set()
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n")
            names.add(name.lower())
        if "host" not in names:
            lines.append(f"Host: {origin.authority}\r\n")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {self._user_agent}\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        # A line break inside a name or value would be a second header (or request).
        # The message never quotes the header: it may be a credential.
        if head.count("\n") != len(lines) or head.count("\r") != len(lines):
            raise ValueError("a request header contains a line break")
        try:
            return head.encode("latin-1") + body
        except UnicodeEncodeError:  # its message would quote a character of the header
            raise ValueError("a request header is not latin-1 text") from None

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)

    def _watch(self, conn: _Connection, deadline: float) -> int:
        """Time `conn`'s answer out at `deadline` (up to one tick later); its tick."""
        tick = math.ceil(deadline / DEADLINE_TICK)
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = set()
            asyncio.get_running_loop().call_at(tick * DEADLINE_TICK, self._expire, tick)
        due.add(conn)
        return tick

    def _unwatch(self, conn: _Connection, tick: int) -> None:
        due = self._due.get(tick)
        if due is not None:
            due.discard(conn)

    def _expire(self, tick: int) -> None:
        for conn in self._due.pop(tick, ()):
            conn._time_out()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, its answer parsed as
    the bytes arrive."""

    def __init__(self, pool: Pool, max_body: int) -> None:
        self._pool = pool
        self._max_body = max_body
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[Answer, bool]] | None = None
        self._parser: _Parser | None = None
        self._tick: int | None = None  # the pool's deadline tick of the exchange
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but is one).
        self._transport = cast(asyncio.Transport, transport)
        self._pool._open.add(self)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            done = parser.feed(data)
        except _BadAnswer as exc:
            self._fail(NoAnswer(f"malformed answer: {exc}"))
            self.close(abort=True)
            return
        if done:
            self._finish(parser)

    def eof_received(self) -> bool:
        return False  # close: connection_lost then ends a body read until the close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        parser = self._parser
        # Only a clean close (a FIN) ends a body read until the close: after a reset,
        # what came may be any part of it.
        if exc is None and parser is not None and parser.until_close and parser.head_done:
            parser.keep_alive = False
            self._finish(parser)
        else:
            self._fail(NoAnswer("connection closed before the answer was complete"))

    # -- one exchange ------------------------------------------------------------

    async def exchange(self, data: bytes, deadline: float) -> tuple[Answer, bool]:
        """Write one request; its answer, and whether the connection can be used again."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[Answer, bool]] = loop.create_future()
        self._waiter = waiter
        self._parser = _Parser(self._max_body)
        self._tick = self._pool._watch(self, deadline)
        if self.closed:
            self._fail(NoAnswer("connection closed before the request was written"))
        else:
            self._transport.write(data)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._fail(NoAnswer("cancelled"))
            self.close(abort=True)  # the answer may still come: never reuse this one
            raise

    def close(self, *, abort: bool = False) -> None:
        self.closed = True
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()

    def _time_out(self) -> None:
        self._tick = None  # the pool has dropped it already
        self._fail(NoAnswer("timeout"))
        self.close(abort=True)

    def _stop_watch(self) -> None:
        if self._tick is not None:
            self._pool._unwatch(self, self._tick)
            self._tick = None

    def _finish(self, parser: _Parser) -> None:
        waiter, self._waiter, self._parser = self._waiter, None, None
        self._stop_watch()
        if waiter is None or waiter.done():
            return
        try:
            answer = parser.answer()
        except _BadAnswer as exc:
            waiter.set_exception(NoAnswer(f"malformed answer: {exc}"))
            self.close()
            return
        waiter.set_result((answer, parser.keep_alive and not self.closed))

    def _fail(self, error: NoAnswer) -> None:
        waiter, self._waiter, self._parser = self._waiter, None, None
        self._stop_watch()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


def _digits(text: str) -> bool:
    """Only ASCII digits, at least one (str.isdigit() alone is also true of "²", which
    int() refuses: an exception out of data_received, not a malformed answer)."""
    return text.isascii() and text.isdigit()


class _BadAnswer(Exception):
    """What could not be parsed (the message names the part, never a header's value)."""


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)


class _Parser:
    """An HTTP/1.1 answer, fed as it arrives; `feed` returns True once it is whole."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._buf = bytearray()
        self._body = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = True

    @property
    def head_done(self) -> bool:
        return self._state != _HEAD

    @property
    def until_close(self) -> bool:
        return self._state == _UNTIL_CLOSE

    def answer(self) -> Answer:
        body = bytes(self._body)
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate", "x-gzip") and body:
            # A body cut at max_body + 1 bytes stays cut: decoded, the truncated stream
            # could come out under the limit and pass for a whole answer.
            if len(body) <= self._max_body:
                body = self._decoded(body, encoding)
        elif encoding not in ("identity", ""):
            raise _BadAnswer(f"unsupported content encoding {encoding[:20]!r}")
        return Answer(self.status, self.headers, body)

    def feed(self, data: bytes) -> bool:
        buf = self._buf
        buf += data
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise _BadAnswer("header section too large")
                    return False
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._head(head)
            elif state == _LENGTH:
                if not self._counted(buf):
                    return False
                self._state = _DONE
            elif state == _CHUNK_SIZE:
                end = buf.find(_CRLF)
                if end < 0:
                    if len(buf) > 1024:
                        raise _BadAnswer("chunk size line too long")
                    return False
                size = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                # Hex digits only: int() would also take "-0", "0x10" or "1_0".
                if not size or size.strip(_HEX_DIGITS):
                    raise _BadAnswer("bad chunk size")
                self._remaining = int(size, 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILER
            elif state == _CHUNK_DATA:
                if not self._counted(buf):
                    return False
                if self._state != _DONE:  # not cut at max_body
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return False
                if buf[:2] != _CRLF:
                    raise _BadAnswer("chunk not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(_CRLF)
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise _BadAnswer("trailer too large")
                    return False
                del buf[: end + 2]
                if end == 0:
                    self._state = _DONE
            elif state == _UNTIL_CLOSE:
                self._keep(buf)
                buf.clear()
                if self._state != _DONE:
                    return False
            if self._state == _DONE:
                if buf:  # more than the answer: a confused server, do not reuse
                    self.keep_alive = False
                return True

    def _counted(self, buf: bytearray) -> bool:
        """Keep up to `_remaining` bytes from `buf`: True once they have all come (or
        the body was cut at max_body)."""
        take = min(self._remaining, len(buf))
        self._keep(buf[:take])
        del buf[:take]
        self._remaining -= take
        return not self._remaining or self._state == _DONE

    def _keep(self, chunk: bytes | bytearray) -> None:
        room = self._max_body + 1 - len(self._body)
        self._body += chunk[:room]
        if len(self._body) > self._max_body:
            # Too large: keep max_body + 1 bytes (the caller refuses the answer) and
            # stop here; the rest is never read, so the connection is not reused.
            self.keep_alive = False
            self._state = _DONE

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not _digits(code):
            raise _BadAnswer("bad status line")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[-1] in " \t" or name[0] in " \t":
                raise _BadAnswer("bad header line")
            key = name.lower()
            value = value.strip(" \t")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            if status == 101:
                raise _BadAnswer("unexpected protocol switch")
            return  # an interim answer (100 Continue): the real one follows
        self.status = status
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        elif "close" in connection:
            self.keep_alive = False
        if status in (204, 304):
            self._state = _DONE
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
            if "content-length" in headers:
                self.keep_alive = False  # both: chunked wins, the framing is suspect
            return
        length = headers.get("content-length")
        if length is None:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False
            return
        if not _digits(length):
            raise _BadAnswer("bad Content-Length")
        self._remaining = int(length)
        self._state = _LENGTH if self._remaining else _DONE

    def _decoded(self, body: bytes, encoding: str) -> bytes:
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        try:
            inflater = zlib.decompressobj(wbits)
            # Bounded: a small compressed body must not inflate into gigabytes.
            decoded = inflater.decompress(body, self._max_body + 1)
        except zlib.error:
            raise _BadAnswer(f"body is not valid {encoding}") from None
        if len(decoded) <= self._max_body and not inflater.eof:
            raise _BadAnswer(f"{encoding} body stops short")  # all read, the stream unended
        return decoded
