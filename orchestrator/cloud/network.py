"""How the orchestrator reaches the cloud from an operator's network: CAs, proxies, sessions.

    Network.of(bundle, proxies=True)   the run's TLS context and proxies, chosen once
    network.session(limit)             pooled keep-alive connections: reads, IAM
    network.session(limit, fresh_connections=True)
                                       a new connection for every request: reinstalls

The trusted CAs are the system's, or one bundle file: `--ca-bundle`, else the
cloud's `cacert` (clouds.yaml / OS_CACERT), else REQUESTS_CA_BUNDLE, else
SSL_CERT_FILE. Certificate checks cannot be turned off: there is no --insecure.

Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read with the standard
library (`urllib.request.getproxies`, `proxy_bypass`) once per origin and passed
to each request. Sessions are made without aiohttp's `trust_env`, which would look
the proxy up again for every request and also read ~/.netrc, adding its
credentials as Basic auth to requests that carry the service's own (with AK/SK
signing that even makes the request fail). Proxy credentials go in the proxy URL
(`http://user:password@proxy:3128`). No session keeps cookies: the API is
authenticated by token or signature on every request.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from yarl import URL

from orchestrator.errors import UsageError

CA_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
# What the service's logs show as the client (aiohttp's default names Python's and
# its own versions instead).
USER_AGENT = "ecs-reinstall-orchestrator"


@dataclass(frozen=True)
class CaBundle:
    path: Path | None  # None: the system's CAs
    source: str  # which option or variable named it, for the run's record


def ca_bundle(option: Path | None, cloud_cacert: str | None, env: Mapping[str, str]) -> CaBundle:
    """The CA bundle to trust, by the precedence above; checked to be a readable file."""
    if option is not None:
        chosen = CaBundle(option, "--ca-bundle")
    elif cloud_cacert:
        chosen = CaBundle(Path(cloud_cacert).expanduser(), "cacert of the cloud")
    else:
        name = next((n for n in CA_ENV if env.get(n, "").strip()), None)
        if name is None:
            return CaBundle(None, "system")
        chosen = CaBundle(Path(env[name].strip()).expanduser(), name)
    assert chosen.path is not None
    if not chosen.path.is_file():
        raise UsageError(f"CA bundle {chosen.path} ({chosen.source}) is not a readable file")
    return chosen


def ssl_context(bundle: CaBundle) -> ssl.SSLContext:
    """A verifying TLS context that trusts the bundle (or the system's CAs)."""
    try:
        if bundle.path is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(bundle.path))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"CA bundle {bundle.path} ({bundle.source}): {exc}") from None


class Proxies:
    """The proxy for each origin (scheme, host, port), from the environment or none.

    The environment is read at an origin's first request and kept for the run: a run
    does not pick up a proxy changed while it runs.
    """

    def __init__(self, *, from_environment: bool = True) -> None:
        self.from_environment = from_environment
        self._origins: dict[URL, URL | None] = {}

    def for_url(self, url: URL) -> URL | None:
        """The proxy a request to `url` goes through; None: straight to it."""
        if not self.from_environment:
            return None
        origin = url.origin()
        try:
            return self._origins[origin]
        except KeyError:
            found = self._origins[origin] = _environment_proxy(origin)
            return found


def _environment_proxy(origin: URL) -> URL | None:
    if origin.host is None or urllib.request.proxy_bypass(origin.host_port_subcomponent or ""):
        return None
    value = urllib.request.getproxies().get(origin.scheme, "").strip()
    if not value:
        return None
    # "proxy:3128" is accepted by curl and urllib alike: a proxy without a scheme is http.
    return URL(value if "://" in value else f"http://{value}")


@dataclass(frozen=True)
class Network:
    """The TLS context and the proxies of every request a run sends."""

    tls: ssl.SSLContext
    proxies: Proxies = field(default_factory=lambda: Proxies(from_environment=False))

    @classmethod
    def of(cls, bundle: CaBundle, *, proxies: bool = True) -> Network:
        """Trust `bundle`; follow the environment's proxies unless `proxies` is false
        (the in-process simulator: always on loopback)."""
        return cls(ssl_context(bundle), Proxies(from_environment=proxies))

    def session(self, limit: int, *, fresh_connections: bool = False) -> aiohttp.ClientSession:
        """A session of at most `limit` connections at once. Its connections are kept
        alive and reused, unless `fresh_connections`: then each request opens its own
        connection (through the proxy too: its own tunnel) and closes it after."""
        connector = aiohttp.TCPConnector(limit=limit, ssl=self.tls, force_close=fresh_connections)
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
