"""Which cloud a run talks to, and how: credentials, endpoints and CAs (part of `resolve`).

A resumed run keeps the cloud, region, endpoints and CA bundle it was started with
unless they are given again; the password is read again from where it lives
(clouds.yaml or the environment), never from the state. Every check runs here,
before anything is created: an endpoint that would get a password over plain
http, a region that cannot go into a hostname, a CA file that is no PEM bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.cli.checks import check_region
from orchestrator.cloud import cloudconfig, regions
from orchestrator.cloud.cloudconfig import CloudConfig
from orchestrator.cloud.endpoints import Endpoints, check_endpoint
from orchestrator.cloud.network import CaBundle, ca_bundle, ssl_context
from orchestrator.errors import UsageError
from orchestrator.visible import echo

__all__ = ["Connection", "check_same_cloud", "connection_from", "names_a_cloud"]


@dataclass(frozen=True)
class Connection:
    cloud: CloudConfig  # credentials are built from it when the run starts
    endpoint: str | None
    endpoint_template: str | None
    endpoints: Endpoints
    ca: CaBundle


def names_a_cloud(given: Mapping[str, Any]) -> bool:
    """Whether the options given now name a real cloud (so not the state's simulator)."""
    return bool(given.get("endpoint") or given.get("endpoint_template") or given.get("os_cloud"))


def check_same_cloud(saved: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse to switch a state file between the simulator and a real cloud, or (unless
    accepted) between endpoints: its in-flight jobs live where it was made."""
    if not saved:
        return
    new_target = (
        given.get("endpoint")
        or given.get("endpoint_template")
        or given.get("os_cloud")
        or given.get("cloud")
    )
    was_simulated = bool(saved.get("simulate"))
    if given.get("simulate") and not was_simulated:
        raise UsageError(
            "this state file was made against a real endpoint "
            f"({saved.get('endpoint') or saved.get('endpoint_template')}); --simulate cannot"
            " resume it: its jobs and servers are in that cloud"
        )
    if new_target and was_simulated:
        raise UsageError(
            "this state file was made with --simulate; it cannot be resumed against a real"
            " endpoint. Start a new state file (--state NEW_PATH) for the real run"
        )
    if not new_target or was_simulated:
        return
    before = (saved.get("endpoint"), saved.get("endpoint_template"))
    now = (given.get("endpoint"), given.get("endpoint_template"))
    if before != now and not given.get("accept_changed_endpoint"):
        raise UsageError(
            f"the endpoint differs from the state file's: was {_endpoint_text(*before)},"
            f" now {_endpoint_text(*now)}. Jobs already accepted are followed at the new"
            " endpoint only if you say so: add --accept-changed-endpoint"
        )


def _endpoint_text(endpoint: str | None, template: str | None) -> str:
    return f"--endpoint {endpoint}" if endpoint else f"--endpoint-template {template}"


def connection_from(
    given: Mapping[str, Any], saved: Mapping[str, Any], environ: Mapping[str, str]
) -> Connection:
    """Credentials, endpoints and CAs for a real cloud: given now, else saved, else
    from clouds.yaml and the environment."""
    os_cloud = given.get("os_cloud") or saved.get("os_cloud")
    config = cloudconfig.load(os_cloud, environ)
    if config is None:
        raise UsageError(
            "no credentials: use --os-cloud NAME (clouds.yaml), the OS_* variables "
            "(OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, ...), OS_AUTH_TOKEN, or "
            "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"
        )
    if config.auth_type == "password" and config.auth_url:
        check_endpoint(config.auth_url)  # IAM gets the password: https unless loopback
    # One of the two given now replaces both saved: they are one choice.
    endpoint = given.get("endpoint") or (
        None if given.get("endpoint_template") else saved.get("endpoint")
    )
    endpoint_template = given.get("endpoint_template") or (
        None if given.get("endpoint") else saved.get("endpoint_template")
    )
    region = given.get("region") or saved.get("region") or config.region_name
    if region and not given.get("region"):  # --region was checked when parsed
        check_region(region, "the state file's region" if saved.get("region") else config.label)
    cloud = given.get("cloud") or saved.get("cloud") or regions.guess_cloud(config.auth_url)
    if (
        endpoint is None
        and endpoint_template is None
        and cloud is None
        and config.auth_type != "password"  # a password's token brings the catalog
    ):
        raise UsageError(
            "give --endpoint or --endpoint-template (or --simulate), or --cloud otc|huawei "
            "with --region"
        )
    if cloud and region and not regions.is_known(cloud, region):
        echo(
            f"warning: region {region!r} is not among the known {cloud} regions; "
            f"trying {regions.ecs_endpoint(cloud, region)}",
            err=True,
        )
    # Raises UsageError when unsafe or incomplete.
    endpoints = Endpoints(
        endpoint,
        endpoint_template,
        cloud=cloud,
        region=region,
        catalog=config.auth_type == "password",
    )
    saved_ca = saved.get("ca_bundle") if saved.get("ca_bundle_source") == "--ca-bundle" else None
    ca = ca_bundle(
        given.get("ca_bundle") or (Path(saved_ca) if saved_ca else None), config.cacert, environ
    )
    ssl_context(ca)  # a file that is no PEM bundle: refused now, not mid-run
    return Connection(config, endpoint, endpoint_template, endpoints, ca)
