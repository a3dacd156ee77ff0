"""How the orchestrator reaches the cloud from an operator's network: proxies and CAs.

Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, looked up once per origin
(`proxy_for`), not per request: aiohttp's `trust_env` does the lookup and reads
~/.netrc in a worker thread for every request, which at fleet scale cost more CPU
than the requests themselves (issue 10). The session is made without `trust_env`;
every caller of `session.request` passes `**proxy_for(session, url)`.
The trusted CAs are the system's, or one bundle file: `--ca-bundle`, else the
cloud's `cacert` (clouds.yaml / OS_CACERT), else REQUESTS_CA_BUNDLE, else
SSL_CERT_FILE. Certificate checks cannot be turned off: there is no --insecure.
"""

from __future__ import annotations

import contextlib
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from orchestrator.errors import UsageError

CA_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


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


def new_session(limit: int, bundle: CaBundle, *, proxies: bool = True) -> aiohttp.ClientSession:
    """The one pooled session of a run: proxies from the environment (not for the
    in-process simulator), CAs as chosen."""
    tls = ssl_context(bundle)
    connector = aiohttp.TCPConnector(limit=limit, ssl=tls)
    session = aiohttp.ClientSession(connector=connector, trust_env=False)
    _TLS[session] = tls
    if proxies:
        _PROXIED[session] = {}
    return session


# The TLS context each session was made with, for the lean pool that sends beside it
# (`client.EcsClient`): one choice of CAs for every request of a run.
_TLS: weakref.WeakKeyDictionary[aiohttp.ClientSession, ssl.SSLContext] = weakref.WeakKeyDictionary()


def tls_for(session: aiohttp.ClientSession) -> ssl.SSLContext | None:
    """The TLS context `new_session` gave `session` (None: not made there; the system's CAs)."""
    return _TLS.get(session)


# Sessions whose requests follow the environment's proxies, and what each origin resolved to.
_PROXIED: weakref.WeakKeyDictionary[aiohttp.ClientSession, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def proxy_for(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """`proxy` / `proxy_auth` keyword arguments for a request to `url` on `session`.

    The environment is read once per origin (scheme, host, port) and kept for the
    session's life: a run does not pick up a proxy changed while it runs.
    """
    origins = _PROXIED.get(session)
    if origins is None:
        return {}
    scheme, _, rest = url.partition("://")
    origin = scheme + "://" + rest.split("/", 1)[0]
    found = origins.get(origin)
    if found is None:
        found = {}
        with contextlib.suppress(LookupError):
            proxy, auth = get_env_proxy_for_url(URL(origin))
            found = {"proxy": proxy, "proxy_auth": auth}
        origins[origin] = found
    return found
