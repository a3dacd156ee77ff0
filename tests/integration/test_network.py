"""A company network: HTTPS through a CONNECT proxy, trusting a CA given with
--ca-bundle. The simulator serves HTTPS with a certificate issued by a CA made for
the test (trustme), and the proxy is a small asyncio CONNECT tunnel on 127.0.0.1
that counts its tunnels: each is a connection to the service."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from client_helpers import FAST, PROJECT, server_id, spec

from orchestrator.cloud.auth import TokenAuth
from orchestrator.cloud.client import EcsClient
from orchestrator.cloud.cloudconfig import CloudConfig
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.iam import IamAuth
from orchestrator.cloud.network import CaBundle, Network, ca_bundle
from orchestrator.errors import NotSent, Unreachable, UsageError
from orchestrator.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.timeout(30)

USERS = (("alice", "tls-test-password", "Dom"),)
FLEET = tuple((PROJECT, server_id(n)) for n in range(1, 5))


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    """A company CA, and its certificate as a file (what --ca-bundle names)."""
    authority = trustme.CA()
    path = tmp_path / "company-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture
async def tls_sim(ca: tuple[trustme.CA, Path]) -> AsyncIterator[Simulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    config = SimulatorConfig(seed=1, users=USERS, fleet=FLEET)
    async with Simulator(config, tls=context) as sim:
        yield sim


@dataclass
class ConnectProxy:
    url: str
    seen: list[str] = field(default_factory=list)  # request lines, one per tunnel
    credentials: list[str | None] = field(default_factory=list)  # Proxy-Authorization


@pytest.fixture
async def connect_proxy() -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy("")

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
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        proxy.seen.append(f"{method} {target}")
        auth = [
            v
            for n, _, v in (line.partition(": ") for line in lines[1:])
            if n.lower() == "proxy-authorization"
        ]
        proxy.credentials.append(auth[0] if auth else None)
        host, port = target.rsplit(":", 1)
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield proxy
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
    tls_sim: Simulator,
    connect_proxy: ConnectProxy,
    ca: tuple[trustme.CA, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    network = Network.of(ca_bundle(ca[1], None, {}))
    async with network.session(8) as session:
        auth = IamAuth(session, config(tls_sim.url), proxies=network.proxies)
        async with EcsClient(
            session, Endpoints(catalog=True), auth, timeouts=FAST, network=network
        ) as ecs:
            view = await ecs.server(PROJECT, server_id(1), "eu-de")
    assert view.server_id == server_id(1)
    assert tls_sim.stats()["tokens_issued"] == {PROJECT: 1}
    # IAM and ECS (from the catalog: https, same host) both went through the tunnel.
    authority = tls_sim.url.removeprefix("https://")
    assert connect_proxy.seen and all(s == f"CONNECT {authority}" for s in connect_proxy.seen)


async def test_behind_a_proxy_each_reinstall_has_a_tunnel_of_its_own_and_reads_share_one(
    tls_sim: Simulator,
    connect_proxy: ConnectProxy,
    ca: tuple[trustme.CA, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = "proxy-user", "proxy-pass-not-a-secret"
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url.replace("//", f"//{user}:{password}@"))
    monkeypatch.setenv("NO_PROXY", "")
    network = Network.of(ca_bundle(ca[1], None, {}))
    async with network.session(8) as session:
        auth = IamAuth(session, config(tls_sim.url), proxies=network.proxies)
        async with EcsClient(
            session, Endpoints(catalog=True), auth, timeouts=FAST, network=network
        ) as ecs:
            for n in range(1, 5):
                await ecs.server(PROJECT, server_id(n), "eu-de")
                job = await ecs.reinstall(spec(n, region="eu-de"))
                await ecs.job(PROJECT, job, "eu-de")
    stats = tls_sim.stats()
    assert stats["reinstalls_total"] == 4
    assert stats["reinstalls_on_reused_connections"] == 0
    # One tunnel kept alive for IAM and the eight reads, one opened for each reinstall.
    assert len(connect_proxy.seen) == stats["connections"] == 1 + 4
    # The proxy's credentials came from its URL, as Basic auth to the proxy alone.
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert connect_proxy.credentials == [basic] * 5


async def test_without_the_company_ca_nothing_is_sent(tls_sim: Simulator) -> None:
    network = Network.of(CaBundle(None, "system"), proxies=False)
    async with network.session(8) as session:
        auth = IamAuth(session, config(tls_sim.url))
        async with EcsClient(
            session, Endpoints(endpoint=tls_sim.url), auth, timeouts=FAST, network=network
        ) as ecs:
            with pytest.raises(NotSent, match="IAM"):
                await ecs.server(PROJECT, server_id(1), "eu-de")
    assert tls_sim.stats()["tokens_issued"] == {}
    assert tls_sim.stats()["connections"] == 0


async def test_an_untrusted_certificate_stops_the_run_at_the_first_reinstall(
    tls_sim: Simulator,
) -> None:
    network = Network.of(CaBundle(None, "system"), proxies=False)
    async with network.session(8) as session:
        ecs = EcsClient(
            session, Endpoints(endpoint=tls_sim.url), TokenAuth("t0k"), timeouts=FAST,
            network=network,
        )  # fmt: skip
        # Not a blip to retry target after target: every one would meet it.
        untrusted = r"TLS certificate of 127\.0\.0\.1:\d+ is not trusted"
        with pytest.raises(Unreachable, match=untrusted):
            await ecs.reinstall(spec(1))
        with pytest.raises(Unreachable):  # and the breaker stays tripped
            await ecs.server(PROJECT, server_id(1))
        await ecs.aclose()
    assert ecs.requests["reinstall"] == 0
    assert tls_sim.stats()["connections"] == 0


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
