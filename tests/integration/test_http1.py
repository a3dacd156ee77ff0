"""The lean HTTP/1.1 pool (`orchestrator/http1.py`) against real loopback servers.

Each test starts a small `asyncio.start_server` on 127.0.0.1 (port 0) whose script
writes crafted bytes, so that framing, reuse and the two failure classes are checked
on the wire. The classes matter more than anything else here: `ConnectFailed` must
mean that nothing was sent (the request may be sent again), `NoAnswer` that it was,
or may have been (a reinstall in doubt is settled from the server, never resent).

    serve(script)     a RawServer on a free port; `script(peer)` runs per connection
    answering(*a)     a script that answers each request with the next of `a`
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from client_helpers import free_port

from orchestrator.http1 import Answer, ConnectFailed, NoAnswer, Origin, Pool
from orchestrator.simulator import Simulator, SimulatorConfig

# -- the loopback server ----------------------------------------------------------


@dataclass
class Peer:
    """One accepted connection, server side."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: RawServer
    index: int  # 0 for the server's first connection

    async def request(self) -> bytes | None:
        """The next whole request (head and Content-Length body), None once the client
        closed or reset the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.server.requests.append(head + body)
        return head + body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_client_leaves(self) -> None:
        """Read (and drop) whatever comes until the client closes or resets."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass

    def reset(self) -> None:
        """Close with a TCP RST rather than a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Script = Callable[[Peer], Awaitable[None]]


class RawServer:
    """`asyncio.start_server` on 127.0.0.1:0 that runs `script` for each connection,
    and counts connections (accepted, open now, most open at once) and requests."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests: list[bytes] = []
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.port = 0

    @property
    def origin(self) -> Origin:
        return Origin.of(f"http://127.0.0.1:{self.port}")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        index = self.accepted
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self._script(Peer(reader, writer, self, index))
        finally:
            self.open -= 1
            writer.close()
            self._tasks.discard(task)


Serve = Callable[[Script], Awaitable[RawServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """serve(script) -> a started RawServer, stopped after the test."""
    servers: list[RawServer] = []

    async def start(script: Script) -> RawServer:
        server = RawServer(script)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def answering(*answers: bytes) -> Script:
    """Answer each request with the next of `answers` (the last repeats), until EOF;
    the count runs over all of the server's connections."""
    sent = 0

    async def script(peer: Peer) -> None:
        nonlocal sent
        while await peer.request() is not None:
            await peer.send(answers[min(sent, len(answers) - 1)])
            sent += 1

    return script


def ok(body: bytes = b"ok", *headers: str, status: str = "HTTP/1.1 200 OK") -> bytes:
    """A whole answer framed by Content-Length."""
    head = [status, f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def chunked(*chunks: bytes, head: str = "HTTP/1.1 200 OK", trailer: bytes = b"") -> bytes:
    """A whole chunked answer: each chunk as given, then the last chunk and `trailer`."""
    out = (head + "\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    for chunk in chunks:
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return out + b"0\r\n" + trailer + b"\r\n"


async def get(
    pool: Pool, server: RawServer, *, connect_timeout: float = 5.0, total_timeout: float = 5.0
) -> Answer:
    return await pool.request(
        server.origin,
        "GET",
        "/",
        {},
        connect_timeout=connect_timeout,
        total_timeout=total_timeout,
    )


# -- 1-3: reuse and framing ----------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(serve: Serve) -> None:
    server = await serve(answering(*(ok(b"answer %d" % n) for n in range(5))))
    async with Pool(limit=4) as pool:
        bodies = [(await get(pool, server)).body for _ in range(5)]
        assert pool.connections_made == 1
    assert bodies == [b"answer %d" % n for n in range(5)]
    assert server.accepted == 1 and len(server.requests) == 5


async def test_answer_written_byte_by_byte_is_parsed(serve: Serve) -> None:
    first = ok(b'{"job_id": "byte-by-byte"}', "Content-Type: application/json")

    async def script(peer: Peer) -> None:
        await peer.request()
        for byte in first:
            await peer.send(bytes([byte]))
            await asyncio.sleep(0)  # the client (same loop) reads before the next byte
        await answering(ok(b"second"))(peer)

    server = await serve(script)
    async with Pool(limit=1) as pool:
        answer = await get(pool, server)
        assert (await get(pool, server)).body == b"second"
        assert pool.connections_made == 1
    assert answer.status == 200
    assert answer.body == b'{"job_id": "byte-by-byte"}'
    assert answer.headers["content-type"] == "application/json"


async def test_chunked_body_with_extension_and_trailers_then_reused(serve: Serve) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b"A\r\n, chunked!\r\n"
        b"0;last\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n"
    )
    server = await serve(answering(answer, ok(b"next")))
    async with Pool(limit=1) as pool:
        first = await get(pool, server)
        second = await get(pool, server)
        assert pool.connections_made == 1
    assert first.body == b"hello, chunked!"
    assert second.body == b"next"  # the trailers were consumed, not taken for an answer


async def test_empty_answers_without_body_are_complete(serve: Serve) -> None:
    server = await serve(
        answering(b"HTTP/1.1 204 No Content\r\n\r\n", ok(b"", status="HTTP/1.1 202 Accepted"), ok())
    )
    async with Pool(limit=1) as pool:
        answers = [await get(pool, server) for _ in range(3)]
        assert pool.connections_made == 1
    assert [(a.status, a.body) for a in answers] == [(204, b""), (202, b""), (200, b"ok")]


# -- 4: body until the close -------------------------------------------------------


async def test_body_until_close_is_whole_and_connection_not_reused(serve: Serve) -> None:
    async def script(peer: Peer) -> None:
        if await peer.request() is None:
            return
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
        await asyncio.sleep(0.01)
        await peer.send(b"part two")
        # the fixture closes the connection when the script returns

    server = await serve(script)
    async with Pool(limit=1) as pool:
        first = await get(pool, server)
        second = await get(pool, server)
        assert pool.connections_made == 2
    assert first.body == second.body == b"part one, part two"
    assert server.accepted == 2


async def test_body_until_close_cut_by_a_reset_is_no_answer(serve: Serve) -> None:
    """A reset is no end of the body: what came may be any part of it."""

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b'HTTP/1.1 200 OK\r\n\r\n{"job_id": "trunc')
        await asyncio.sleep(0.01)
        peer.reset()

    server = await serve(script)
    async with Pool(limit=1) as pool:
        with pytest.raises(NoAnswer):
            await get(pool, server)


# -- 5: interim answers ------------------------------------------------------------


async def test_interim_answers_are_skipped(serve: Serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-Interim: yes\r\n\r\n"
    server = await serve(answering(interim + ok(b"real", "X-Final: yes"), ok(b"next")))
    async with Pool(limit=1) as pool:
        answer = await get(pool, server)
        assert (await get(pool, server)).body == b"next"
        assert pool.connections_made == 1
    assert (answer.status, answer.body) == (200, b"real")
    assert answer.headers == {"content-length": "4", "x-final": "yes"}


# -- 6: bodies over max_body -------------------------------------------------------

BIG = bytes(range(256)) * 4  # 1024 bytes, each position distinct within 256


@pytest.mark.parametrize(
    "big",
    [ok(BIG), chunked(*(BIG[i : i + 30] for i in range(0, len(BIG), 30)))],
    ids=["length", "chunked"],
)
async def test_body_over_max_body_is_cut_and_connection_not_reused(
    serve: Serve, big: bytes
) -> None:
    server = await serve(answering(big, ok(b"next")))
    async with Pool(limit=1, max_body=100) as pool:
        answer = await get(pool, server)
        assert answer.body == BIG[:101]
        assert (await get(pool, server)).body == b"next"
        assert pool.connections_made == 2


async def test_body_of_exactly_max_body_is_whole_and_reused(serve: Serve) -> None:
    server = await serve(answering(ok(BIG[:100]), ok(b"next")))
    async with Pool(limit=1, max_body=100) as pool:
        assert (await get(pool, server)).body == BIG[:100]
        assert (await get(pool, server)).body == b"next"
        assert pool.connections_made == 1


# -- 7: content encodings ----------------------------------------------------------

TEXT = b'{"servers": [' + b'{"id": "x"}, ' * 200 + b"{}]}"


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(TEXT, mtime=0)),
        ("x-gzip", gzip.compress(TEXT, mtime=0)),
        ("deflate", zlib.compress(TEXT)),
    ],
    # Named by encoding: the test ids must be the same in every xdist worker.
    ids=["gzip", "x-gzip", "deflate"],
)
async def test_compressed_body_is_decoded(serve: Serve, encoding: str, packed: bytes) -> None:
    server = await serve(answering(ok(packed, f"Content-Encoding: {encoding}")))
    async with Pool(limit=1) as pool:
        answer = await get(pool, server)
    assert len(packed) < len(TEXT)
    assert answer.body == TEXT


async def test_gzip_bomb_is_bounded_to_max_body(serve: Serve) -> None:
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(50)) + packer.flush()  # 50 MiB
    server = await serve(answering(ok(bomb, "Content-Encoding: gzip")))
    async with Pool(limit=1, max_body=1 << 20) as pool:
        answer = await get(pool, server)
    assert len(bomb) < 1 << 20  # the compressed body itself is under the limit
    assert len(answer.body) == (1 << 20) + 1
    assert answer.body.count(0) == len(answer.body)


async def test_compressed_body_over_max_body_stays_cut(serve: Serve) -> None:
    """Decoded, the cut stream would come out under the limit: a whole answer to the
    caller, though only part of it came."""
    packed = gzip.compress(random.Random(7).randbytes(90))  # incompressible: > 100 bytes
    server = await serve(answering(ok(packed, "Content-Encoding: gzip"), ok(b"next")))
    async with Pool(limit=1, max_body=100) as pool:
        answer = await get(pool, server)
        assert (await get(pool, server)).body == b"next"
        assert pool.connections_made == 2
    assert len(packed) > 101
    assert answer.body == packed[:101]


async def test_body_that_is_not_what_its_encoding_says_is_no_answer(serve: Serve) -> None:
    server = await serve(answering(ok(b"plain text", "Content-Encoding: gzip"), ok()))
    async with Pool(limit=1) as pool:
        with pytest.raises(NoAnswer, match="malformed"):
            await get(pool, server)
        assert (await get(pool, server)).body == b"ok"
        assert pool.connections_made == 2


# -- 8: nothing sent ---------------------------------------------------------------


async def test_refused_connection_is_connect_failed() -> None:
    origin = Origin.of(f"http://127.0.0.1:{free_port()}")
    async with Pool(limit=1) as pool:
        with pytest.raises(ConnectFailed):
            await pool.request(origin, "POST", "/reinstall", {}, b"{}")
        assert pool.connections_made == 0


async def test_connect_timeout_zero_is_connect_failed_and_nothing_sent(serve: Serve) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1) as pool:
        with pytest.raises(ConnectFailed, match="timed out"):
            await get(pool, server, connect_timeout=0)
        assert pool.connections_made == 0
        await asyncio.sleep(0.05)  # anything written would have arrived by now
        assert server.requests == []
        # the slot came back
        assert (await get(pool, server)).body == b"ok"


# -- 9-11: sent, and no (whole) answer -------------------------------------------


async def _close_after_request(peer: Peer) -> None:
    await peer.request()


async def _half_body(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789")


async def _half_chunked(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n0123456789")


async def _half_head(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nContent-Len")


@pytest.mark.parametrize("script", [_close_after_request, _half_body, _half_chunked, _half_head])
async def test_close_before_the_whole_answer_is_no_answer(serve: Serve, script: Script) -> None:
    server = await serve(script)
    async with Pool(limit=1) as pool:
        with pytest.raises(NoAnswer):
            await pool.request(server.origin, "POST", "/reinstall", {}, b"{}", total_timeout=5)
        assert pool.connections_made == 1
    assert len(server.requests) == 1  # it was sent: a doubt, never a ConnectFailed


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
MALFORMED = {
    "status-version": b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-not-http": b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-code": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-code-short": b"HTTP/1.1 20\r\nContent-Length: 2\r\n\r\nok",
    "status-code-superscript": b"HTTP/1.1 \xb200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "header-no-colon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nok",
    "header-space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "header-folded": b"HTTP/1.1 200 OK\r\nX-A: b\r\n  folded\r\nContent-Length: 2\r\n\r\nok",
    "header-empty-name": b"HTTP/1.1 200 OK\r\n: value\r\nContent-Length: 2\r\n\r\nok",
    "length-letters": b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
    "length-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "length-two-values": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "length-superscript": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok",
    "chunk-size": CHUNKED_HEAD + b"zz\r\nok\r\n0\r\n\r\n",
    "chunk-size-0x": CHUNKED_HEAD + b"0x2\r\nok\r\n0\r\n\r\n",
    "chunk-size-minus-0": CHUNKED_HEAD + b"-0\r\n\r\n",
    "chunk-size-underscore": CHUNKED_HEAD + b"0_2\r\nok\r\n0\r\n\r\n",
    "chunk-size-empty": CHUNKED_HEAD + b";x\r\n\r\n",
    "chunk-no-crlf": CHUNKED_HEAD + b"2\r\nokXX0\r\n\r\n",
    "encoding-unknown": ok(b"ok", "Content-Encoding: br"),
    "gzip-stops-short": ok(gzip.compress(TEXT, mtime=0)[:-12], "Content-Encoding: gzip"),
    "deflate-stops-short": ok(zlib.compress(TEXT)[:-6], "Content-Encoding: deflate"),
}


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_answer_is_no_answer_and_next_request_opens_a_new_connection(
    serve: Serve, bad: bytes
) -> None:
    server = await serve(answering(bad, ok(b"fine")))
    async with Pool(limit=1) as pool:
        with pytest.raises(NoAnswer, match="malformed answer"):
            await get(pool, server)
        assert (await get(pool, server)).body == b"fine"
        assert pool.connections_made == 2


async def test_header_section_too_large_is_no_answer(serve: Serve) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"x" * (70 * 1024))
        await peer.until_client_leaves()

    server = await serve(script)
    async with Pool(limit=1) as pool:
        with pytest.raises(NoAnswer, match="too large"):
            await get(pool, server)


async def test_server_that_never_answers_is_no_answer_within_total_timeout(serve: Serve) -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await peer.until_client_leaves()

    server = await serve(silent)
    async with Pool(limit=1) as pool:
        started = time.monotonic()
        with pytest.raises(NoAnswer, match="timeout"):
            await get(pool, server, total_timeout=0.2)
        elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 2.0  # not the default 30 s
    assert len(server.requests) == 1


async def test_an_earlier_deadline_never_times_out_the_next_exchange(serve: Serve) -> None:
    # Deadlines are kept per tick for the whole pool: a connection reused after a
    # quick answer must not be timed out when its first request's deadline passes.
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"quick"))
        await peer.request()
        await asyncio.sleep(0.4)  # past the first request's deadline
        await peer.send(ok(b"slow"))
        await peer.until_client_leaves()

    server = await serve(script)
    async with Pool(limit=1) as pool:
        assert (await get(pool, server, total_timeout=0.15)).body == b"quick"
        assert (await get(pool, server, total_timeout=5)).body == b"slow"
        assert pool.connections_made == 1


async def test_requests_due_in_one_tick_all_time_out(serve: Serve) -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await peer.until_client_leaves()

    server = await serve(silent)
    async with Pool(limit=5) as pool:
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(get(pool, server, total_timeout=0.2) for _ in range(5)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    assert all(isinstance(o, NoAnswer) and "timeout" in str(o) for o in outcomes), outcomes
    assert 0.19 <= elapsed < 2.0
    assert len(server.requests) == 5


async def test_no_free_slot_within_total_timeout_is_no_answer(serve: Serve) -> None:
    async def slow(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(0.5)
        await peer.send(ok())
        await peer.until_client_leaves()

    server = await serve(slow)
    async with Pool(limit=1) as pool:
        first = asyncio.create_task(get(pool, server))
        await asyncio.sleep(0.05)
        with pytest.raises(NoAnswer, match="free connection"):
            await get(pool, server, total_timeout=0.1)
        assert (await first).body == b"ok"
    assert len(server.requests) == 1  # the one that waited for a slot was never sent


# -- 12: a cancelled caller --------------------------------------------------------


async def test_cancelled_caller_aborts_the_connection_and_releases_the_slot(
    serve: Serve,
) -> None:
    got_request = asyncio.Event()
    client_gone = asyncio.Event()

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            got_request.set()
            await peer.until_client_leaves()
            client_gone.set()
            return
        await answering(ok(b"after"))(peer)

    server = await serve(script)
    async with Pool(limit=1) as pool:
        waiting = asyncio.create_task(get(pool, server))
        await asyncio.wait_for(got_request.wait(), 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(client_gone.wait(), 2)  # aborted, not left open
        answer = await get(pool, server, total_timeout=2)  # limit=1: the slot is back
        assert answer.body == b"after"
        assert pool.connections_made == 2


# -- 13-15, 18: when a connection must not be reused --------------------------------


async def test_idle_connection_closed_by_server_is_not_reused(serve: Serve) -> None:
    closed = asyncio.Event()

    async def one_then_close(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"once"))  # no "Connection: close": the client cannot know
        peer.writer.close()
        await peer.writer.wait_closed()
        closed.set()

    server = await serve(one_then_close)
    async with Pool(limit=1) as pool:
        assert (await get(pool, server)).body == b"once"
        await asyncio.wait_for(closed.wait(), 2)
        await asyncio.sleep(0.05)  # the FIN reaches the client's protocol
        assert (await get(pool, server)).body == b"once"
        assert pool.connections_made == 2


async def test_connection_idle_longer_than_keepalive_is_closed_not_reused(serve: Serve) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1, keepalive=0.05) as pool:
        await get(pool, server)
        await asyncio.sleep(0.1)
        await get(pool, server)
        assert pool.connections_made == 2
        await asyncio.sleep(0.05)
        assert server.open == 1  # the stale one was closed, not just left aside


async def test_fresh_within_opens_a_new_connection_and_leaves_the_idle_one(
    serve: Serve,
) -> None:
    server = await serve(answering(ok(b"a"), ok(b"b"), ok(b"c"), ok(b"d")))
    async with Pool(limit=2) as pool:
        await get(pool, server)
        await asyncio.sleep(0.15)
        # Idle 0.15 s: too old for a request that must not go on a stale connection...
        answer = await pool.request(server.origin, "POST", "/", {}, fresh_within=0.1)
        assert answer.body == b"b"
        assert pool.connections_made == 2
        await asyncio.sleep(0.02)
        assert server.open == 2  # ...and the older one was left open for others
        # Idle 0.02 s: fresh enough; and a request without the condition takes any.
        await pool.request(server.origin, "POST", "/", {}, fresh_within=0.1)
        await get(pool, server)
        assert pool.connections_made == 2


@pytest.mark.parametrize(
    ("answer", "reused"),
    [
        (ok(b"x", "Connection: close"), False),
        (ok(b"x", "Connection: Keep-Alive, Close"), False),
        (ok(b"x", status="HTTP/1.0 200 OK"), False),
        (ok(b"x", "Connection: keep-alive", status="HTTP/1.0 200 OK"), True),
        (ok(b"x", "Connection: keep-alive"), True),
        (ok(b"x", "Transfer-Encoding: chunked")[:-1] + b"1\r\nx\r\n0\r\n\r\n", False),
    ],
    ids=[
        "close",
        "close-in-list",
        "http10",
        "http10-keep-alive",
        "keep-alive",
        "length-and-chunked",
    ],
)
async def test_reuse_follows_the_answers_connection_header(
    serve: Serve, answer: bytes, reused: bool
) -> None:
    server = await serve(answering(answer))
    async with Pool(limit=1) as pool:
        assert (await get(pool, server)).body == b"x"
        assert (await get(pool, server)).body == b"x"
        assert pool.connections_made == (1 if reused else 2)


async def test_unsolicited_bytes_on_an_idle_connection_make_it_unusable(serve: Serve) -> None:
    sent_stale = asyncio.Event()

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(ok(b"first"))
            await asyncio.sleep(0.01)
            await peer.send(ok(b"stale"))  # an answer to nothing
            sent_stale.set()
            await peer.until_client_leaves()
            return
        await answering(ok(b"fresh"))(peer)

    server = await serve(script)
    async with Pool(limit=1) as pool:
        assert (await get(pool, server)).body == b"first"
        await asyncio.wait_for(sent_stale.wait(), 2)
        await asyncio.sleep(0.05)
        assert (await get(pool, server)).body == b"fresh"
        assert pool.connections_made == 2


async def test_bytes_after_the_answer_make_the_connection_unusable(serve: Serve) -> None:
    server = await serve(answering(ok(b"first") + ok(b"stale"), ok(b"fresh")))
    async with Pool(limit=1) as pool:
        assert (await get(pool, server)).body == b"first"
        assert (await get(pool, server)).body == b"fresh"
        assert pool.connections_made == 2


# -- 16, 19: the request on the wire -----------------------------------------------


@pytest.mark.parametrize("value", ["s3cr3t-token\r\nX-Evil: 1", "s3cr3t-token\nX-Evil: 1"])
async def test_line_break_in_a_header_value_is_refused_without_quoting_it(
    serve: Serve, value: str
) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1) as pool:
        with pytest.raises(ValueError) as caught:
            await pool.request(server.origin, "GET", "/", {"X-Auth-Token": value})
        with pytest.raises(ValueError) as in_name:
            await pool.request(server.origin, "GET", "/", {value: "v"})
        assert pool.connections_made == 0
    for error in (caught.value, in_name.value):
        assert "s3cr3t" not in str(error) and "Evil" not in str(error)
        assert "line break" in str(error)
    assert server.requests == []


async def test_a_header_value_outside_latin_1_is_refused_without_quoting_it(
    serve: Serve,
) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1) as pool:
        with pytest.raises(ValueError) as caught:
            await pool.request(server.origin, "GET", "/", {"X-Auth-Token": "s3cr3t\u20ac"})
        assert pool.connections_made == 0
    assert "s3cr3t" not in str(caught.value) and "\u20ac" not in str(caught.value)
    assert "\\u20ac" not in str(caught.value) and "latin-1" in str(caught.value)
    assert server.requests == []


async def test_simple_get_is_exactly_these_bytes(serve: Serve) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1) as pool:
        await pool.request(server.origin, "GET", "/v1/p/jobs/j?x=1", {"Accept": "application/json"})
    assert server.requests == [
        b"GET /v1/p/jobs/j?x=1 HTTP/1.1\r\n"
        b"Accept: application/json\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"User-Agent: ecs-reinstall-orchestrator\r\n"
        b"\r\n" % server.port
    ]


async def test_host_and_user_agent_given_by_the_caller_are_not_duplicated(serve: Serve) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1, user_agent="unused") as pool:
        await pool.request(
            server.origin, "GET", "/", {"host": "ecs.example.test", "User-Agent": "mine/1"}
        )
    lines = server.requests[0].lower().split(b"\r\n")
    assert [line for line in lines if line.startswith(b"host:")] == [b"host: ecs.example.test"]
    assert [line for line in lines if line.startswith(b"user-agent:")] == [b"user-agent: mine/1"]


async def test_post_carries_content_length_even_when_empty(serve: Serve) -> None:
    server = await serve(answering(ok()))
    async with Pool(limit=1) as pool:
        await pool.request(server.origin, "POST", "/a", {})
        await pool.request(server.origin, "POST", "/b", {}, b'{"os-reinstall": {}}')
        await pool.request(server.origin, "GET", "/c", {})
    empty, full, plain = server.requests
    assert b"\r\nContent-Length: 0\r\n" in empty and empty.endswith(b"\r\n\r\n")
    assert b"\r\nContent-Length: 20\r\n" in full and full.endswith(b'\r\n\r\n{"os-reinstall": {}}')
    assert b"content-length" not in plain.lower()


def test_origin_of_url() -> None:
    assert Origin.of("http://127.0.0.1:8080/v1/x") == Origin(
        "http", "127.0.0.1", 8080, "127.0.0.1:8080"
    )
    assert Origin.of("https://ecs.example.test/v1") == Origin(
        "https", "ecs.example.test", 443, "ecs.example.test"
    )
    assert Origin.of("http://[::1]:81/").host == "::1"
    assert Origin.of("http://user:pw@127.0.0.1:81/").authority == "127.0.0.1:81"
    with pytest.raises(ValueError):
        Origin.of("ftp://127.0.0.1/")


# -- 17: the limit -----------------------------------------------------------------


async def test_limit_bounds_open_connections_and_every_request_succeeds(serve: Serve) -> None:
    async def slow(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.1)
            await peer.send(ok(b"slow"))

    server = await serve(slow)
    async with Pool(limit=2) as pool:
        answers = await asyncio.gather(*(get(pool, server) for _ in range(6)))
        assert pool.connections_made == 2
    assert [a.body for a in answers] == [b"slow"] * 6
    assert server.max_open == 2  # never more than the limit, and the limit was used


# -- 20: the answer's headers ------------------------------------------------------


async def test_repeated_headers_are_joined_and_names_lowercased(serve: Serve) -> None:
    server = await serve(
        answering(ok(b"", "X-Dup: one", "Retry-After: 5", "x-dup: two", "X-DUP:three ", "X-Empty:"))
    )
    async with Pool(limit=1) as pool:
        answer = await get(pool, server)
    assert answer.headers == {
        "content-length": "0",
        "x-dup": "one, two, three",
        "retry-after": "5",
        "x-empty": "",
    }


# -- the simulator -----------------------------------------------------------------


@pytest.mark.parametrize("http", ["aiohttp", "lean"])
async def test_keep_alive_with_the_simulator(http: str) -> None:
    async with Simulator(SimulatorConfig(seed=1), http=http) as sim:  # type: ignore[arg-type]
        origin = Origin.of(sim.url)
        async with Pool(limit=2) as pool:
            answers = [
                await pool.request(origin, "GET", "/_sim/stats", {}, total_timeout=5)
                for _ in range(3)
            ]
            missing = await pool.request(origin, "GET", "/no/such/path", {}, total_timeout=5)
            assert pool.connections_made == 1
    assert [a.status for a in answers] == [200] * 3
    assert all(isinstance(json.loads(a.body), dict) for a in answers)
    assert missing.status == 404
