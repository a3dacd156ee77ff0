"""The simulator's HTTP (aiohttp's server), spoken to byte by byte over loopback TCP:
what a client may rely on (keep-alive, pipelining, framing, a graceful stop)."""

from __future__ import annotations

import asyncio
import json

from sim_helpers import PROJECT, SERVER, ApiFactory, reinstall_body

SERVER_PATH = f"/v1/{PROJECT}/cloudservers/{SERVER}"
REINSTALL_PATH = f"{SERVER_PATH}/reinstallos"


async def _read_answer(
    reader: asyncio.StreamReader, *, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    size = 0 if head_only else int(headers["content-length"])
    body = await asyncio.wait_for(reader.readexactly(size), 5)
    return status, headers, body


def _get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: sim", *extra, "", ""]).encode()


def _post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: sim", f"Content-Length: {len(body)}", *extra]
    return "\r\n".join([*lines, "", ""]).encode() + body


async def _connect(api: object) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", api.sim.port)  # type: ignore[attr-defined]


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    make_api: ApiFactory,
) -> None:
    api = await make_api()
    reader, writer = await _connect(api)
    body = json.dumps(reinstall_body(mode="withStopServer")).encode()
    # One write holding three requests: the answers come back in the order asked.
    writer.write(_get(SERVER_PATH) + _post(REINSTALL_PATH, body) + _get("/_sim/stats"))
    first, second, third = [await _read_answer(reader) for _ in range(3)]
    assert first[0] == 200 and json.loads(first[2])["server"]["id"] == SERVER
    assert first[1]["content-type"] == "application/json"
    assert second[0] == 200 and "job_id" in json.loads(second[2])
    stats = json.loads(third[2])
    assert stats["requests"]["server"] == 1 and stats["reinstalls_total"] == 1
    # The same connection serves a later request too.
    writer.write(_get(SERVER_PATH))
    assert (await _read_answer(reader))[0] == 200
    writer.close()


async def test_a_chunked_body_is_read_whole(make_api: ApiFactory) -> None:
    api = await make_api()
    reader, writer = await _connect(api)
    body = json.dumps(reinstall_body(mode="withStopServer")).encode()
    half = len(body) // 2
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:half], body[half:])
    )
    head = f"POST {REINSTALL_PATH} HTTP/1.1\r\nHost: sim\r\nTransfer-Encoding: chunked\r\n\r\n"
    # Sent in two pieces, split inside a chunk: the request waits for the rest.
    message = head.encode() + chunks + b"0\r\n\r\n"
    writer.write(message[: len(head) + 7])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(message[len(head) + 7 :])
    status, _, answer = await _read_answer(reader)
    assert status == 200 and "job_id" in json.loads(answer)
    writer.close()


async def test_connection_close_and_http_1_0_end_the_connection(make_api: ApiFactory) -> None:
    api = await make_api()
    for request in (
        _get(SERVER_PATH, "Connection: close"),
        f"GET {SERVER_PATH} HTTP/1.0\r\nHost: sim\r\n\r\n".encode(),
    ):
        reader, writer = await _connect(api)
        writer.write(request)
        status, _, _ = await _read_answer(reader)
        assert status == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()


async def test_unknown_paths_wrong_methods_and_head(make_api: ApiFactory) -> None:
    api = await make_api()
    reader, writer = await _connect(api)
    writer.write(_get(f"/v1/{PROJECT}/nothing-here"))
    status, _, body = await _read_answer(reader)
    assert (status, body) == (404, b"404: Not Found")
    writer.write(_post(SERVER_PATH, b""))
    status, headers, _ = await _read_answer(reader)
    assert (status, headers["allow"]) == (405, "GET,HEAD")
    writer.write(f"HEAD {SERVER_PATH} HTTP/1.1\r\nHost: sim\r\n\r\n".encode())
    status, headers, _ = await _read_answer(reader, head_only=True)
    assert status == 200 and int(headers["content-length"]) > 0
    # No body came with the HEAD answer: the next answer starts right away.
    writer.write(_get("/_sim/stats"))
    status, _, body = await _read_answer(reader)
    assert status == 200 and json.loads(body)["requests"]["server"] == 1
    writer.close()


async def test_malformed_and_oversized_requests_are_refused_and_closed(
    make_api: ApiFactory,
) -> None:
    api = await make_api()
    for request in (
        b"NONSENSE\r\n\r\n",
        _get(SERVER_PATH, "Bad Header: x"),
        f"POST {REINSTALL_PATH} HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n".encode(),
        f"POST {REINSTALL_PATH} HTTP/1.1\r\nContent-Length: -1\r\n\r\n".encode(),
    ):
        reader, writer = await _connect(api)
        writer.write(request)
        status, _, _ = await _read_answer(reader)
        assert 400 <= status < 500, request
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert (await api.stats())["reinstalls_total"] == 0


async def test_with_latency_pipelined_requests_still_come_back_in_order(
    make_api: ApiFactory,
) -> None:
    # Latency makes every handler wait: the answers still come in the order asked.
    api = await make_api(latency_ms=20)
    reader, writer = await _connect(api)
    body = json.dumps(reinstall_body(mode="withStopServer")).encode()
    writer.write(_post(REINSTALL_PATH, body) + _get(SERVER_PATH) + _get("/_sim/stats"))
    first, second, third = [await _read_answer(reader) for _ in range(3)]
    assert first[0] == 200 and "job_id" in json.loads(first[2])
    assert second[0] == 200 and json.loads(second[2])["server"]["id"] == SERVER
    requests = {"reinstall": 1, "job": 0, "server": 1, "list_v1": 0, "list_nova": 0}
    assert json.loads(third[2])["requests"] == requests
    writer.close()


async def test_stop_lets_an_answer_under_way_finish(make_api: ApiFactory) -> None:
    api = await make_api(slow_answer_rate=1.0, slow_answer_seconds=0.3)
    reader, writer = await _connect(api)
    writer.write(_post(REINSTALL_PATH, json.dumps(reinstall_body(mode="withStopServer")).encode()))
    await writer.drain()
    await asyncio.sleep(0.05)
    await api.sim.stop()  # within its grace period: the held answer is still sent
    status, _, body = await _read_answer(reader)
    assert status == 200 and "job_id" in json.loads(body)
    writer.close()


async def test_expect_100_continue_is_answered_before_the_body(make_api: ApiFactory) -> None:
    api = await make_api()
    reader, writer = await _connect(api)
    body = json.dumps(reinstall_body(mode="withStopServer")).encode()
    head = _post(REINSTALL_PATH, body, "Expect: 100-continue")[: -len(body)]
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(body)
    status, _, answer = await _read_answer(reader)
    assert status == 200 and "job_id" in json.loads(answer)
    writer.close()
