"""A company network: HTTPS through a CONNECT proxy, trusting a CA given with
--ca-bundle. The simulator is served over TLS with a certificate made for the test
(openssl), and the proxy is a small asyncio CONNECT tunnel on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from client_helpers import FAST, PROJECT, server_id

from orchestrator.client import EcsClient
from orchestrator.cloudconfig import CloudConfig
from orchestrator.endpoints import Endpoints
from orchestrator.errors import NotSent, UsageError
from orchestrator.iam import IamAuth
from orchestrator.network import CaBundle, ca_bundle, new_session
from orchestrator.simulator import SimulatorConfig
from orchestrator.simulator.app import SimulatorApp, build_app

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]

USERS = (("alice", "tls-test-password", "Dom"),)


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    command += " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True
    )
    return crt, key


@pytest.fixture
async def tls_sim(cert: tuple[Path, Path]) -> AsyncIterator[tuple[str, SimulatorApp]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, cert))
    app, sim = build_app(SimulatorConfig(seed=1, users=USERS, fleet=((PROJECT, server_id(1)),)))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}", sim
    await runner.cleanup()


@pytest.fixture
async def connect_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            dst.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        seen.append(f"{method} {target}")
        host, port = target.rsplit(":", 1)
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    server.close()


def config(url: str) -> CloudConfig:
    return CloudConfig(
        source="environment",
        auth_type="password",
        auth_url=url + "/v3",
        username="alice",
        password="tls-test-password",
        user_domain_name="Dom",
    )


async def test_https_through_a_connect_proxy_with_the_company_ca(
    tls_sim: tuple[str, SimulatorApp],
    connect_proxy: tuple[str, list[str]],
    cert: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, sim = tls_sim
    proxy_url, seen = connect_proxy
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "")
    bundle = ca_bundle(cert[0], None, {})
    async with new_session(8, bundle) as session:
        auth = IamAuth(session, config(url))
        ecs = EcsClient(session, Endpoints(catalog=True), auth, timeouts=FAST)
        view = await ecs.server(PROJECT, server_id(1), "eu-de")
    assert view.server_id == server_id(1)
    assert sim.stats()["tokens_issued"] == {PROJECT: 1}
    # IAM and ECS (from the catalog: https, same host) both went through the tunnel.
    assert seen and all(s == f"CONNECT {url.removeprefix('https://')}" for s in seen)


async def test_without_the_company_ca_nothing_is_sent(
    tls_sim: tuple[str, SimulatorApp],
) -> None:
    url, sim = tls_sim
    async with new_session(8, CaBundle(None, "system"), proxies=False) as session:
        auth = IamAuth(session, config(url))
        ecs = EcsClient(session, Endpoints(catalog=True), auth, timeouts=FAST)
        with pytest.raises(NotSent, match="IAM"):
            await ecs.server(PROJECT, server_id(1), "eu-de")
    assert sim.stats()["tokens_issued"] == {}


def test_ca_bundle_precedence(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a.pem", "b.pem", "c.pem"))
    for path in (a, b, c):
        path.write_text("x")
    env = {"SSL_CERT_FILE": str(c), "REQUESTS_CA_BUNDLE": str(b)}
    assert ca_bundle(a, str(b), env) == CaBundle(a, "--ca-bundle")
    assert ca_bundle(None, str(b), env).source == "cacert of the cloud"
    assert ca_bundle(None, None, env) == CaBundle(b, "REQUESTS_CA_BUNDLE")
    assert ca_bundle(None, None, {"SSL_CERT_FILE": str(c)}) == CaBundle(c, "SSL_CERT_FILE")
    assert ca_bundle(None, None, {}) == CaBundle(None, "system")
    with pytest.raises(UsageError, match=r"missing\.pem \(--ca-bundle\)"):
        ca_bundle(tmp_path / "missing.pem", None, {})
