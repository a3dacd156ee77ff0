"""A lean HTTP/1.1 server for the simulator's handlers: one protocol object per connection.

aiohttp's server builds a task, a request, a payload stream, a response and a
writer per request; for the simulator's small JSON answers that machinery cost
more CPU than the simulated service itself. Here a request that arrives whole
is answered from `data_received`: parsed, routed (`SimulatorApp.route`), handled
and written in one call, with no task, when the configuration has nothing that
waits (`SimulatorApp.may_wait`: latency or slow answers); otherwise each request
runs as a task and the connection's later requests wait their turn.

What it speaks: HTTP/1.0 and 1.1, keep-alive and pipelining (answers in order),
`Expect: 100-continue`, `Content-Length` or chunked bodies up to `MAX_BODY` (413
beyond, as aiohttp's default limit, refused before the handler, so not counted),
HEAD on the GET routes, 404 and 405 (with `Allow`) as aiohttp's router answers
them, 400 and a closed connection for anything it cannot parse. Idle keep-alive
connections stay open until the client or `close` ends them.
On `close` it stops listening, closes idle connections, gives requests under
way `grace` seconds to finish, then closes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from orchestrator.simulator.app import Answer, Call, SimulatorApp

log = logging.getLogger(__name__)

MAX_HEAD = 8190 + 32768  # request line and headers, as aiohttp's parser allows
MAX_BODY = 1024**2  # aiohttp's default client_max_size
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Date:
    """The `Date` header's value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, formatdate(second, usegmt=True)
        return self._text


class LeanServer:
    """Serves `app` on an asyncio server; `start(host, port)`, then `close(grace)`."""

    def __init__(self, app: SimulatorApp) -> None:
        self.app = app
        self.date = _Date()
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; the port listened on (a free one for 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        port_: int = self._server.sockets[0].getsockname()[1]
        return port_

    async def close(self, grace: float) -> None:
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if not connection.busy:
                connection.close()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace)
        for task in list(self.tasks):
            task.cancel()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()


class _Connection(asyncio.Protocol):
    def __init__(self, server: LeanServer) -> None:
        self._server = server
        self._app = server.app
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._continued = False  # 100 Continue sent for the request being received
        self.busy = False  # a request of this connection is being handled in a task

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # A handler under way finishes (its counters must stay right); its answer is dropped.
        self._transport = None
        self._server.connections.discard(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.busy:
            self._serve_buffered()

    def _serve_buffered(self) -> None:
        """Answer every whole request in the buffer, in order, until one must wait."""
        while self._transport is not None:
            try:
                request = self._parse()
            except _BadRequest as bad:
                self._write(Answer(bad.status, bad.message.encode(), content_type="text/plain"))
                self.close()
                return
            if request is None:
                return
            call, handler, params, head_only, keep_alive = request
            if handler is None:
                self._finish(params_answer(params), head_only, keep_alive)
                continue
            coroutine = handler(call, **params)
            if self._app.may_wait:
                self.busy = True
                task = asyncio.get_running_loop().create_task(
                    self._run(coroutine, head_only, keep_alive)
                )
                self._server.tasks.add(task)
                task.add_done_callback(self._server.tasks.discard)
                return
            self._finish(_run_inline(coroutine), head_only, keep_alive)

    async def _run(
        self, coroutine: Coroutine[Any, Any, Answer], head_only: bool, keep_alive: bool
    ) -> None:
        try:
            answer = await coroutine
        except Exception:
            log.exception("the simulator failed to answer a request")
            answer = _internal_error()
        self.busy = False
        self._finish(answer, head_only, keep_alive)
        if self._transport is not None and self._buffer:
            self._serve_buffered()

    def _finish(self, answer: Answer, head_only: bool, keep_alive: bool) -> None:
        if answer.drop:
            self.close()
            return
        keep_alive = keep_alive and not self._server.closing
        self._write(answer, head_only, keep_alive)
        if not keep_alive:
            self.close()

    def _write(self, answer: Answer, head_only: bool = False, keep_alive: bool = False) -> None:
        if self._transport is None:
            return
        lines = [
            f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, '')}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
            f"Date: {self._server.date()}",
        ]
        lines.extend(f"{name}: {value}" for name, value in answer.headers)
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._transport.write(head if head_only else head + answer.body)

    def _parse(
        self,
    ) -> tuple[Call, Any, Any, bool, bool] | None:
        """The next whole request in the buffer (removed from it), or None until it is whole.

        Returns (call, handler or None, params or the allowed methods, HEAD, keep-alive).
        """
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise _BadRequest(400, "400: Bad Request (the request head is too long)")
            return None
        if end > MAX_HEAD:
            raise _BadRequest(400, "400: Bad Request (the request head is too long)")
        lines = buffer[:end].decode("utf-8", "surrogateescape").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(400, "400: Bad Request (malformed request line)") from None
        if version not in ("HTTP/1.1", "HTTP/1.0") or not method.isalpha():
            raise _BadRequest(400, "400: Bad Request (malformed request line)")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or " " in name:
                raise _BadRequest(400, "400: Bad Request (malformed header)")
            headers.add(name, value.strip(" \t"))
        start = end + 4
        body, consumed = self._body(headers, start)
        if body is None:
            if not self._continued and headers.get("Expect", "").lower() == "100-continue":
                self._continued = True  # the client waits for this before sending the body
                if self._transport is not None:
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        self._continued = False
        del buffer[:consumed]
        connection = headers.get("Connection", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        path, path_safe, query = _split_target(target)
        call = Call(
            method,
            path,
            query,
            CIMultiDictProxy(headers),
            body,
            self._base_url(headers),
        )
        routed = self._app.route(method, path_safe)
        head_only = method == "HEAD"
        if isinstance(routed, set):
            return call, None, routed, head_only, keep_alive
        handler, params = routed
        return call, handler, params, head_only, keep_alive

    def _body(self, headers: CIMultiDict[str], start: int) -> tuple[bytes | None, int]:
        """(body, bytes the request takes in the buffer); (None, 0) while incomplete."""
        buffer = self._buffer
        coding = headers.get("Transfer-Encoding")
        length = headers.get("Content-Length")
        if coding is not None:
            if length is not None or coding.strip().lower() != "chunked":
                raise _BadRequest(400, "400: Bad Request (unsupported Transfer-Encoding)")
            return _chunked(buffer, start)
        if length is None:
            return b"", start
        if not length.isdigit() or not length.isascii():
            raise _BadRequest(400, "400: Bad Request (invalid Content-Length)")
        size = int(length)
        if size > MAX_BODY:
            raise _BadRequest(
                413, f"Maximum request body size {MAX_BODY} exceeded, actual body size {size}"
            )
        if len(buffer) < start + size:
            return None, 0
        return bytes(buffer[start : start + size]), start + size

    def _base_url(self, headers: CIMultiDict[str]) -> str:
        """scheme://host of the request, as aiohttp's `request.host`: Host, else the socket."""
        host = headers.get("Host")
        if host is None and self._transport is not None:
            sockname = self._transport.get_extra_info("sockname")
            host = f"{sockname[0]}:{sockname[1]}" if sockname else "localhost"
        return f"http://{host}"


def _chunked(buffer: bytearray, start: int) -> tuple[bytes | None, int]:
    """Decode a chunked body starting at `start`; (None, 0) while incomplete."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None, 0
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, "400: Bad Request (invalid chunk size)") from None
        if size < 0:
            raise _BadRequest(400, "400: Bad Request (invalid chunk size)")
        position = line_end + 2
        if size == 0:
            # Trailer fields, if any, up to an empty line.
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None, 0
                if line_end == position:
                    return bytes(body), line_end + 2
                position = line_end + 2
        if len(buffer) < position + size + 2:
            return None, 0
        if len(body) + size > MAX_BODY:
            raise _BadRequest(
                413,
                f"Maximum request body size {MAX_BODY} exceeded, actual body size "
                f"{len(body) + size}",
            )
        body += buffer[position : position + size]
        if buffer[position + size : position + size + 2] != b"\r\n":
            raise _BadRequest(400, "400: Bad Request (malformed chunk)")
        position += size + 2


def _split_target(target: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(decoded path, path with `%2F` and `%25` kept, query pairs) of a request target."""
    if target.startswith("/") and "%" not in target and "?" not in target and "#" not in target:
        return target, target, []
    if target.startswith("/"):
        path, _, rest = target.partition("?")
        query_string, _, _ = rest.partition("#")
        if "#" in path:
            path = path.partition("#")[0]
        url = URL.build(path=path, query_string=query_string, encoded=True)
    else:
        try:
            url = URL(target, encoded=True)
        except ValueError:
            raise _BadRequest(400, "400: Bad Request (invalid target)") from None
    query = list(url.query.items()) if url.query_string else []
    return url.path, url.path_safe, query


def params_answer(allowed: set[str]) -> Answer:
    """aiohttp's router's answer for a path no route takes (404) or a method it refuses (405)."""
    if not allowed:
        return Answer(404, b"404: Not Found", content_type="text/plain; charset=utf-8")
    return Answer(
        405,
        b"405: Method Not Allowed",
        (("Allow", ",".join(sorted(allowed))),),
        content_type="text/plain; charset=utf-8",
    )


def _internal_error() -> Answer:
    return Answer(
        500,
        b"500 Internal Server Error\n\nServer got itself in trouble",
        content_type="text/plain; charset=utf-8",
    )


def _run_inline(coroutine: Coroutine[Any, Any, Answer]) -> Answer:
    """Run a handler that cannot suspend (`SimulatorApp.may_wait` is false) to its answer."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        answer: Answer = done.value
        return answer
    except Exception:
        log.exception("the simulator failed to answer a request")
        return _internal_error()
    # It awaited something after all: a bug, not a request to serve.
    with contextlib.suppress(RuntimeError):
        coroutine.close()
    log.error("a simulator handler waited although nothing was configured to wait")
    return _internal_error()
