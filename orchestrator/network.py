"""How the orchestrator reaches the cloud from an operator's network: proxies and CAs.

Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (aiohttp's `trust_env`).
The trusted CAs are the system's, or one bundle file: `--ca-bundle`, else the
cloud's `cacert` (clouds.yaml / OS_CACERT), else REQUESTS_CA_BUNDLE, else
SSL_CERT_FILE. Certificate checks cannot be turned off: there is no --insecure.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

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
    connector = aiohttp.TCPConnector(limit=limit, ssl=ssl_context(bundle))
    return aiohttp.ClientSession(connector=connector, trust_env=proxies)
