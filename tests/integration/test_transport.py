"""The client's HTTP (aiohttp) against loopback servers that write crafted bytes.

Each test starts a small `asyncio.start_server` on 127.0.0.1 (port 0) whose script
writes what the test wants on the wire, so that framing, connection use and the
two failure classes are checked there. The classes matter more than anything else
here: `NotSent` (and `Unreachable`) must mean that nothing was sent (the request
may be sent again); `OutcomeUnknown` for a reinstall, `RetryLater` for a read,
that it was sent, or may have been (a reinstall in doubt is settled from the
server, never resent).

    serve(script)     a RawServer on a free port; `script(peer)` runs per connection
    answering(*a)     a script that answers each request with the next of `a`
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from client_helpers import FAST, PROJECT, TOKEN, free_port, server_id, sim_client, spec

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import MAX_BODY_BYTES, EcsClient, Timeouts
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.reachability import Reachability
from orchestrator.errors import (
    BadResponse,
    CommandUnderWay,
    NotSent,
    OutcomeUnknown,
    RetryLater,
    Unreachable,
)

pytestmark = pytest.mark.timeout(30)

JOB_ID = "ff80808288d41e1b018990260955686a"

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
        self.server.connection_of.append(self.index)
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
        self.connection_of: list[int] = []  # per request: the connection it came on
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posts(self) -> int:
        return sum(1 for r in self.requests if r.startswith(b"POST "))

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


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., EcsClient]]:
    """client_for(server, limit=, timeouts=) -> an EcsClient on a session of its own."""
    made: list[tuple[aiohttp.ClientSession, EcsClient]] = []

    def make(
        server: RawServer | str, *, limit: int = 8, timeouts: Timeouts = FAST, **kwargs: object
    ) -> EcsClient:
        url = server if isinstance(server, str) else server.url
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))
        client = EcsClient(
            session, Endpoints(endpoint=url), TokenAuth(TOKEN), timeouts=timeouts, **kwargs
        )
        made.append((session, client))
        return client

    yield make
    for session, client in made:
        await client.aclose()
        await session.close()


ClientFor = Callable[..., EcsClient]


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


def ok(body: bytes = b"{}", *headers: str, status: str = "HTTP/1.1 200 OK") -> bytes:
    """A whole answer framed by Content-Length."""
    head = [status, f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def chunked(*chunks: bytes, head: str = "HTTP/1.1 200 OK", trailer: bytes = b"") -> bytes:
    """A whole chunked answer: each chunk as given, then the last chunk and `trailer`."""
    out = (head + "\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    for chunk in chunks:
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return out + b"0\r\n" + trailer + b"\r\n"


def server_json(n: int = 1, **extra: object) -> bytes:
    """A server read's answer, as the service gives it."""
    return json.dumps({"server": {"id": server_id(n), "status": "SHUTOFF", **extra}}).encode()


JOB_ANSWER = json.dumps({"job_id": JOB_ID}).encode()


# -- reads: framing and keep-alive ------------------------------------------------------


async def test_reads_reuse_one_kept_alive_connection(serve: Serve, client_for: ClientFor) -> None:
    server = await serve(answering(ok(server_json())))
    client = client_for(server)
    for _ in range(5):
        assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"
    assert server.accepted == 1 and len(server.requests) == 5


async def by_method(peer: Peer) -> None:
    """A job id for a POST, a server for a GET, on every connection until it closes."""
    while (request := await peer.request()) is not None:
        await peer.send(ok(JOB_ANSWER if request.startswith(b"POST ") else server_json()))


async def test_reinstalls_each_go_on_a_new_connection_that_reads_never_share(
    serve: Serve, client_for: ClientFor
) -> None:
    server = await serve(by_method)
    client = client_for(server)
    for n in range(3):
        await client.server(PROJECT, server_id(1))
        assert await client.reinstall(spec(n)) == JOB_ID
        await client.server(PROJECT, server_id(1))
    posts = [i for i, r in enumerate(server.requests) if r.startswith(b"POST ")]
    assert len(posts) == 3
    for i in posts:
        # Alone on its connection: nothing before it there, nothing after it.
        connection = server.connection_of[i]
        assert server.connection_of.count(connection) == 1
        assert b"\r\nConnection: close\r\n" in server.requests[i]
        assert b"\r\nUser-Agent: ecs-reinstall-orchestrator\r\n" in server.requests[i]
    reads = {server.connection_of[i] for i in range(len(server.requests)) if i not in posts}
    assert len(reads) == 1  # all six reads on one kept-alive connection


async def test_a_read_after_the_server_closed_its_idle_connection_succeeds(
    serve: Serve, client_for: ClientFor
) -> None:
    closed = asyncio.Event()

    async def one_then_close(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(server_json()))  # no "Connection: close": the client cannot know
        peer.writer.close()
        await peer.writer.wait_closed()
        closed.set()

    server = await serve(one_then_close)
    client = client_for(server)
    await client.server(PROJECT, server_id(1))
    await asyncio.wait_for(closed.wait(), 2)
    await asyncio.sleep(0.05)  # the FIN reaches the client
    assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"
    assert server.accepted == 2


async def test_a_read_whose_kept_alive_connection_drops_is_sent_again_once_by_aiohttp(
    serve: Serve, client_for: ClientFor
) -> None:
    """aiohttp sends an idempotent request (GET) once more when its connection drops
    before the answer; a read may be asked twice, which is harmless."""

    async def answer_then_drop(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(ok(server_json()))
            await peer.request()  # the second read, on the kept-alive connection
            return  # closed without an answer
        await answering(ok(server_json()))(peer)

    server = await serve(answer_then_drop)
    client = client_for(server)
    await client.server(PROJECT, server_id(1))
    assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"
    assert len(server.requests) == 3 and server.accepted == 2


FRAMINGS = {
    "length": ok(server_json()),
    "chunked-extensions-trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x;name=value\r\n%s\r\n" % (len(server_json()), server_json())
        + b"0;last\r\nX-Trailer: one\r\n\r\n"
    ),
    "interim-answers": b"HTTP/1.1 100 Continue\r\n\r\n" + ok(server_json()),
    "no-body-length-then-close": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + server_json()),
}


@pytest.mark.parametrize("answer", FRAMINGS.values(), ids=FRAMINGS.keys())
async def test_every_framing_of_an_answer_is_read_whole(
    serve: Serve, client_for: ClientFor, answer: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        for start in range(0, len(answer), 7):  # in pieces, as TCP may deliver it
            await peer.send(answer[start : start + 7])
            await asyncio.sleep(0)

    server = await serve(script)
    view = await client_for(server).server(PROJECT, server_id(1))
    assert (view.server_id, view.status) == (server_id(1), "SHUTOFF")


async def test_a_stale_answer_after_the_real_one_is_never_taken_for_the_next(
    serve: Serve, client_for: ClientFor
) -> None:
    stale = ok(server_json(status="STALE-ANSWER"))
    server = await serve(answering(ok(server_json()) + stale, ok(server_json(status="ACTIVE"))))
    client = client_for(server)
    assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"
    assert (await client.server(PROJECT, server_id(1))).status == "ACTIVE"
    assert server.accepted == 2  # the confused connection was not used again


@pytest.mark.xfail(
    strict=True,
    reason="aiohttp (3.14.5) keeps an answer that arrives on an idle kept-alive connection "
    "and gives it to the next request on it; reads only (a reinstall never reuses one)",
)
async def test_bytes_sent_on_an_idle_connection_are_never_taken_for_an_answer(
    serve: Serve, client_for: ClientFor
) -> None:
    sent_stale = asyncio.Event()

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(ok(server_json()))
            await asyncio.sleep(0.01)
            await peer.send(ok(server_json(status="STALE-ANSWER")))  # an answer to nothing
            sent_stale.set()
            await peer.until_client_leaves()
            return
        await answering(ok(server_json(status="ACTIVE")))(peer)

    server = await serve(script)
    client = client_for(server)
    assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"
    await asyncio.wait_for(sent_stale.wait(), 2)
    await asyncio.sleep(0.05)
    assert (await client.server(PROJECT, server_id(1))).status == "ACTIVE"
    assert server.accepted == 2


async def test_the_limit_bounds_open_connections_and_every_read_succeeds(
    serve: Serve, client_for: ClientFor
) -> None:
    async def slow(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.1)
            await peer.send(ok(server_json()))

    server = await serve(slow)
    client = client_for(server, limit=2)
    views = await asyncio.gather(*(client.server(PROJECT, server_id(1)) for _ in range(6)))
    assert [v.status for v in views] == ["SHUTOFF"] * 6
    assert server.max_open == 2 and server.accepted == 2


# -- size caps and compressed answers ----------------------------------------------------

BIG = server_json(pad="x" * (1 << 20))  # over the client's 1 MiB cap


@pytest.mark.parametrize(
    "answer",
    [ok(BIG), chunked(*(BIG[i : i + 65536] for i in range(0, len(BIG), 65536)))],
    ids=["length", "chunked"],
)
async def test_an_answer_over_the_size_cap_is_bad(
    serve: Serve, client_for: ClientFor, answer: bytes
) -> None:
    server = await serve(answering(answer))
    with pytest.raises(BadResponse, match="larger than"):
        await client_for(server).server(PROJECT, server_id(1))


async def test_an_answer_of_exactly_the_size_cap_is_read_whole(
    serve: Serve, client_for: ClientFor
) -> None:
    short = server_json(pad="")
    exact = server_json(pad="x" * (MAX_BODY_BYTES - len(short)))
    assert len(exact) == MAX_BODY_BYTES
    server = await serve(answering(ok(exact)))
    assert (await client_for(server).server(PROJECT, server_id(1))).status == "SHUTOFF"


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", lambda b: gzip.compress(b, mtime=0)), ("deflate", zlib.compress)],
    ids=["gzip", "deflate"],
)
async def test_a_compressed_answer_is_decoded(
    serve: Serve, client_for: ClientFor, encoding: str, pack: Callable[[bytes], bytes]
) -> None:
    body = server_json(metadata={f"k{n}": "v" * 50 for n in range(100)})
    server = await serve(answering(ok(pack(body), f"Content-Encoding: {encoding}")))
    view = await client_for(server).server(PROJECT, server_id(1))
    assert len(pack(body)) < len(body) and view.status == "SHUTOFF"


async def test_a_gzip_bomb_is_refused_without_inflating_it_in_memory(
    serve: Serve, client_for: ClientFor
) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()  # 200 MiB
    assert len(bomb) < 1 << 20  # the compressed body itself is well under the cap
    server = await serve(answering(ok(bomb, "Content-Encoding: gzip")))
    client = client_for(server)
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(BadResponse, match="larger than"):
            await client.server(PROJECT, server_id(1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # decoded in bounded steps and cut at the cap, not 200 MiB


async def test_a_body_that_is_not_what_its_encoding_says_is_maybe_sent(
    serve: Serve, client_for: ClientFor
) -> None:
    server = await serve(answering(ok(b"plain text, not gzip", "Content-Encoding: gzip")))
    client = client_for(server)
    with pytest.raises(RetryLater) as read:
        await client.server(PROJECT, server_id(1))
    assert not isinstance(read.value, NotSent)
    with pytest.raises(OutcomeUnknown):
        await client.reinstall(spec(1))
    assert server.posts() == 1


# -- nothing sent --------------------------------------------------------------------


async def test_a_refused_connection_is_not_sent(client_for: ClientFor) -> None:
    client = client_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(NotSent, match="cannot connect"):
        await client.reinstall(spec(1))
    with pytest.raises(NotSent):
        await client.server(PROJECT, server_id(1))
    assert client.requests["reinstall"] == 0 and client.requests["server"] == 0


async def test_a_connect_timeout_is_not_sent(client_for: ClientFor) -> None:
    # A listening socket whose accept queue is full: loopback SYNs then go unanswered.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            client = client_for(f"http://127.0.0.1:{port}", timeouts=Timeouts(0.3, 5.0))
            started = time.monotonic()
            with pytest.raises(NotSent, match="ConnectionTimeoutError"):
                await client.reinstall(spec(1))
            assert time.monotonic() - started < 2.0
        finally:
            for filler in fillers:
                filler.close()


async def test_no_free_connection_within_the_connect_timeout_is_not_sent(
    serve: Serve, client_for: ClientFor
) -> None:
    async def slow(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(0.5)
        await peer.send(ok(server_json()))
        await peer.until_client_leaves()

    server = await serve(slow)
    client = client_for(server, limit=1, timeouts=Timeouts(0.1, 5.0))
    first = asyncio.create_task(client.server(PROJECT, server_id(1)))
    await asyncio.sleep(0.05)
    with pytest.raises(NotSent):
        await client.server(PROJECT, server_id(2))
    assert (await first).status == "SHUTOFF"
    assert len(server.requests) == 1  # the one that waited for a connection never went


async def test_repeated_connection_failures_stop_the_run_as_unreachable() -> None:
    async with aiohttp.ClientSession() as session:
        client = EcsClient(
            session,
            Endpoints(endpoint=f"http://127.0.0.1:{free_port()}"),
            TokenAuth(TOKEN),
            timeouts=FAST,
            reachability=Reachability(threshold=3, min_seconds=0.0),
        )
        for _ in range(2):
            with pytest.raises(NotSent):
                await client.server(PROJECT, server_id(1))
        with pytest.raises(Unreachable, match="3 connection attempts in a row failed"):
            await client.reinstall(spec(1))
        await client.aclose()


# -- sent, and no (whole) answer: maybe sent, never sent twice ------------------------


async def _close_after_request(peer: Peer) -> None:
    await peer.request()


async def _half_body(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n" + JOB_ANSWER[:20])


async def _half_chunked(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + JOB_ANSWER)


async def _half_head(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nContent-Len")


async def _reset_in_body_until_close(peer: Peer) -> None:
    # A reset is no end of a body read until the close: what came may be any part of it.
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + JOB_ANSWER[:20])
    await asyncio.sleep(0.01)
    peer.reset()


async def _silent(peer: Peer) -> None:
    await peer.request()
    await peer.until_client_leaves()


@pytest.mark.parametrize(
    "script",
    [
        _close_after_request,
        _half_body,
        _half_chunked,
        _half_head,
        _reset_in_body_until_close,
        _silent,
    ],
)
async def test_a_reinstall_without_a_whole_answer_is_in_doubt_and_sent_once(
    serve: Serve, client_for: ClientFor, script: Script
) -> None:
    server = await serve(script)
    client = client_for(server, timeouts=Timeouts(connect=2.0, total=0.5))
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        await client.reinstall(spec(1))
    assert time.monotonic() - started < 3.0  # within the total timeout, not 30 s
    await asyncio.sleep(0.1)  # a second POST, had one been sent, would be here by now
    # Sent once: aiohttp sends only idempotent requests again, never a POST.
    assert server.posts() == 1 and server.accepted == 1
    assert client.requests["reinstall"] == 1


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
MALFORMED = {
    "status-four-digits": b"HTTP/1.1 2000 OK\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "status-version-x": b"HTTP/1.x 200 OK\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "status-version-2": b"HTTP/2 200 OK\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "status-not-http": b"ICY 200 OK\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "status-code-letters": b"HTTP/1.1 2x0 OK\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "status-code-superscript": b"HTTP/1.1 \xb200 OK\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "transfer-encoding-unknown": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunkedatall\r\n\r\n"
        b"2e\r\n" + JOB_ANSWER + b"\r\n0\r\n\r\n"
    ),
    "header-no-colon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "length-letters": b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n" + JOB_ANSWER,
    "length-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n" + JOB_ANSWER,
    "length-two-values": b"HTTP/1.1 200 OK\r\nContent-Length: 46\r\nContent-Length: 47\r\n\r\n"
    + JOB_ANSWER,
    "chunk-size-letters": CHUNKED_HEAD + b"zz\r\n" + JOB_ANSWER + b"\r\n0\r\n\r\n",
    "chunk-size-0x": CHUNKED_HEAD + b"0x2e\r\n" + JOB_ANSWER + b"\r\n0\r\n\r\n",
    "chunk-no-crlf": CHUNKED_HEAD + b"2e\r\n" + JOB_ANSWER + b"XX0\r\n\r\n",
    "status-code-short": b"HTTP/1.1 20\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "status-switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "header-empty-name": b"HTTP/1.1 200 OK\r\n: value\r\nContent-Length: 46\r\n\r\n" + JOB_ANSWER,
    "length-superscript": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n" + JOB_ANSWER,
    "chunk-size-minus-0": CHUNKED_HEAD + b"-0\r\n\r\n",
    "chunk-size-underscore": CHUNKED_HEAD + b"2_e\r\n" + JOB_ANSWER + b"\r\n0\r\n\r\n",
    "chunk-size-empty": CHUNKED_HEAD + b";x\r\n\r\n",
    # aiohttp passes an encoding it does not know through undecoded: not JSON then.
    "encoding-unknown": ok(gzip.compress(JOB_ANSWER), "Content-Encoding: not-an-encoding"),
    "deflate-stops-short": ok(zlib.compress(JOB_ANSWER)[:-6], "Content-Encoding: deflate"),
    "header-section-too-large": b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * (70 * 1024) + b"\r\n\r\n",
    "gzip-stops-short": ok(gzip.compress(JOB_ANSWER, mtime=0)[:-12], "Content-Encoding: gzip"),
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_answer_to_a_reinstall_is_in_doubt_never_a_job(
    serve: Serve, client_for: ClientFor, answer: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)
        await peer.until_client_leaves()

    server = await serve(script)
    client = client_for(server, timeouts=Timeouts(connect=2.0, total=2.0))
    # A lax parser would read "2000" as 200, "notchunkedatall" as chunked: a job id
    # out of a broken answer. It was sent: in doubt, settled from the server.
    with pytest.raises(OutcomeUnknown):
        await client.reinstall(spec(1))
    assert server.posts() == 1


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_answer_to_a_read_is_never_taken_for_one(
    serve: Serve, client_for: ClientFor, answer: bytes
) -> None:
    server = await serve(answering(answer, ok(server_json())))
    client = client_for(server, timeouts=Timeouts(connect=2.0, total=2.0))
    # Asked again later, or settled from another read: never a view of the server.
    with pytest.raises((RetryLater, BadResponse)) as info:
        await client.server(PROJECT, server_id(1))
    assert not isinstance(info.value, NotSent)
    assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"


async def test_a_cancelled_read_closes_its_connection_and_frees_its_place(
    serve: Serve, client_for: ClientFor
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
        await answering(ok(server_json()))(peer)

    server = await serve(script)
    client = client_for(server, limit=1)
    waiting = asyncio.create_task(client.server(PROJECT, server_id(1)))
    await asyncio.wait_for(got_request.wait(), 2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(client_gone.wait(), 2)  # closed, not left open
    assert (await client.server(PROJECT, server_id(1))).status == "SHUTOFF"  # limit 1: freed


# -- with the simulator ----------------------------------------------------------------


async def test_at_the_simulator_reads_share_connections_and_reinstalls_never_do() -> None:
    async with (
        aiohttp.ClientSession() as session,
        sim_client(session, fleet=tuple((PROJECT, server_id(n)) for n in range(8))) as (
            sim,
            client,
        ),
    ):
        for n in range(8):
            await client.server(PROJECT, server_id(n))
            job = await client.reinstall(spec(n))
            await client.job(PROJECT, job)
        stats = sim.stats()
    assert stats["reinstalls_total"] == 8
    assert stats["reinstalls_on_reused_connections"] == 0
    # One kept-alive connection for the 16 reads, one of its own for each reinstall.
    assert stats["connections"] == 1 + 8


async def test_a_reinstall_the_service_refuses_is_sent_on_a_new_connection_too() -> None:
    async with (
        aiohttp.ClientSession() as session,
        sim_client(session, busy_rate=1.0) as (sim, client),
    ):
        for n in range(3):
            with pytest.raises(CommandUnderWay):
                await client.reinstall(spec(n))
        stats = sim.stats()
    assert stats["requests"]["reinstall"] == 3 and stats["connections"] == 3
    assert stats["reinstalls_on_reused_connections"] == 0
