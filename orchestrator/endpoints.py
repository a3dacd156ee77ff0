"""Which ECS endpoint serves a target, and the rule that keeps traffic safe.

HTTPS is the default; plain http is allowed only to loopback hosts (the
simulator), so neither a token nor a signed request ever crosses a network in
clear text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.errors import UsageError

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str) -> str:
    """Return the endpoint without a trailing slash, or raise UsageError."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"endpoint {url!r} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise UsageError("the endpoint must not carry credentials; use the environment")
    if parts.query or parts.fragment:
        raise UsageError(f"endpoint {url!r} must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(f"endpoint {url!r} uses plain http to a non-loopback host; use https")
    return url.rstrip("/")


@dataclass(frozen=True)
class Endpoints:
    """One endpoint for every target, or a template filled from the target's region."""

    endpoint: str | None = None
    template: str | None = None

    def __post_init__(self) -> None:
        if (self.endpoint is None) == (self.template is None):
            raise UsageError("give exactly one of --endpoint and --endpoint-template")
        if self.endpoint is not None:
            check_endpoint(self.endpoint)
        elif "{region}" not in (self.template or ""):
            raise UsageError("--endpoint-template must contain {region}")
        else:
            check_endpoint((self.template or "").replace("{region}", "region"))

    def for_region(self, region: str | None) -> str:
        if self.endpoint is not None:
            return self.endpoint.rstrip("/")
        if not region:
            raise UsageError("--endpoint-template needs a region for every target")
        # Regions were validated as [a-z0-9-] by the inventory reader.
        return check_endpoint((self.template or "").replace("{region}", region))
