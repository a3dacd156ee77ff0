"""Which ECS endpoint serves a target, and the rule that keeps traffic safe.

HTTPS is the default; plain http is allowed only to loopback hosts (the
simulator), so neither a token nor a signed request ever crosses a network in
clear text.

Where the endpoint comes from, first match wins:

    --endpoint URL             every target
    --endpoint-template T      T with the target's region
    the token's service catalog  (IAM password auth) the ECS entry of the region
    --cloud otc|huawei         the known endpoint of the region (`orchestrator.regions`)

The region is the target's own, else `--region` (or the cloud's `region_name`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.cloud.regions import CLOUDS, CloudName, ecs_endpoint
from orchestrator.errors import ProjectRefused, UsageError

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# A host name (letters, digits, '-' and '.', after IDNA) or an IP address.
_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")


def check_endpoint(url: str) -> str:
    """Return the endpoint without a trailing slash, or raise UsageError."""
    if not url.isprintable() or any(c.isspace() for c in url):
        # Also what a service catalog's URL may hold: never sent, never shown raw.
        raise UsageError(f"endpoint {url!r} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in 0-65535
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise UsageError(f"endpoint {url!r} is not a usable URL: {exc}") from None
    if host and not _HOST.fullmatch(host):
        raise UsageError(f"endpoint {url!r}: {host!r} is not a host name or address")
    if port == 0:
        raise UsageError(f"endpoint {url!r}: port 0 cannot be connected to")
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
    """One endpoint for every target, a template filled from the target's region, or
    the service catalog and the cloud's known endpoints."""

    endpoint: str | None = None
    template: str | None = None
    cloud: CloudName | None = None  # known endpoints by region
    region: str | None = None  # for targets whose inventory row gives none
    catalog: bool = False  # ask the credentials' service catalog first

    def __post_init__(self) -> None:
        if self.endpoint is not None and self.template is not None:
            raise UsageError("give exactly one of --endpoint and --endpoint-template")
        if self.endpoint is None and self.template is None and not (self.cloud or self.catalog):
            raise UsageError(
                "give --endpoint, --endpoint-template or --cloud with --region "
                "(IAM password authentication also finds it in the service catalog)"
            )
        if self.endpoint is not None:
            check_endpoint(self.endpoint)
        elif self.template is not None:
            if "{region}" not in self.template:
                raise UsageError("--endpoint-template must contain {region}")
            # A stand-in region that fits where a region may go: a host label, or
            # (on loopback, in tests) the port; each real one is checked when used.
            check_endpoint(self.template.replace("{region}", "1"))
        if self.cloud is not None and self.cloud not in CLOUDS:
            raise UsageError(f"--cloud {self.cloud!r}: known clouds are {', '.join(CLOUDS)}")

    @property
    def uses_catalog(self) -> bool:
        return self.endpoint is None and self.template is None and self.catalog

    def for_region(self, region: str | None, catalog_url: str | None = None) -> str:
        if self.endpoint is not None:
            return self.endpoint.rstrip("/")
        region = region or self.region
        if self.template is not None:
            if not region:
                raise UsageError("--endpoint-template needs a region for every target")
            # Regions were validated as [a-z0-9-] by the inventory reader.
            return check_endpoint(self.template.replace("{region}", region))
        if catalog_url is not None:
            try:
                return check_endpoint(catalog_url)
            except UsageError as exc:
                # Found mid-run, in one project's catalog: that project fails, not the run.
                raise ProjectRefused(
                    f"the service catalog's ECS endpoint is unusable: {exc}"
                ) from None
        if self.cloud is not None and region:
            return check_endpoint(ecs_endpoint(self.cloud, region))
        # Mid-run, for one project's targets: they fail with this, the others go on.
        raise ProjectRefused(
            f"no ECS endpoint for region {region or '(none)'}: the service catalog has none; "
            "give --endpoint, or --cloud and --region"
        )
