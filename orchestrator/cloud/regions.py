"""Known ECS endpoints by cloud and region, for when neither --endpoint nor the
token's service catalog names one.

The Huawei Cloud table follows the official SDK's `EcsRegion` (huaweicloudsdkecs
v2, huaweicloud-sdk-python-v3's ecs_region.py); OTC's follows the endpoint list of
Open Telekom Cloud (opentelekomcloud-docs/regions-and-endpoints) for eu-de and eu-nl,
and the Swiss cloud's own documentation for eu-ch2. Every region was checked against
them (tests/unit/test_endpoints.py holds the table to a copy of both). A region not
in the table still gets the cloud's usual pattern, with a warning from the caller:
regions are added faster than any table is updated.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from orchestrator.errors import UsageError

CloudName = Literal["otc", "huawei"]
CLOUDS: tuple[CloudName, ...] = ("otc", "huawei")

PATTERNS: dict[CloudName, str] = {
    "otc": "https://ecs.{region}.otc.t-systems.com",
    "huawei": "https://ecs.{region}.myhuaweicloud.com",
}

OTC_REGIONS = ("eu-de", "eu-nl", "eu-ch2")

HUAWEI_REGIONS = (
    "af-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ae-ad-1",
    "cn-east-2",
    "cn-east-3",
    "cn-east-5",
    "cn-north-1",
    "cn-north-2",
    "cn-north-4",
    "cn-north-9",
    "cn-south-1",
    "cn-south-2",
    "cn-south-4",
    "cn-southwest-2",
    "eu-west-0",
    "eu-west-101",
    "la-north-2",
    "la-south-2",
    "me-east-1",
    "my-kualalumpur-1",
    "na-mexico-1",
    "sa-brazil-1",
    "tr-west-1",
)

# Where a region's endpoint does not follow the pattern: Huawei Cloud's SDK table
# (EcsRegion) for eu-west-101; OTC's endpoint list for the Swiss cloud (eu-ch2 lives
# under sc.otc.t-systems.com, its IAM at iam-pub.eu-ch2.sc.otc.t-systems.com).
EXCEPTIONS: dict[tuple[CloudName, str], str] = {
    ("huawei", "eu-west-101"): "https://ecs.eu-west-101.myhuaweicloud.eu",
    ("otc", "eu-ch2"): "https://ecs.eu-ch2.sc.otc.t-systems.com",
}

KNOWN: dict[CloudName, tuple[str, ...]] = {"otc": OTC_REGIONS, "huawei": HUAWEI_REGIONS}


def guess_cloud(auth_url: str | None) -> CloudName | None:
    """The cloud an IAM URL belongs to, from its host name; None when unknown."""
    host = (urlsplit(auth_url).hostname or "") if auth_url else ""
    if host.endswith(".otc.t-systems.com") or host.endswith(".otc-service.com"):
        return "otc"
    if host.endswith(".myhuaweicloud.com") or host.endswith(".myhuaweicloud.eu"):
        return "huawei"
    return None


def is_known(cloud: CloudName, region: str) -> bool:
    return region in KNOWN[cloud]


def endpoint_template(cloud: CloudName) -> str:
    """The `{region}` template of a cloud's ECS endpoints."""
    return PATTERNS[cloud]


def ecs_endpoint(cloud: CloudName, region: str) -> str:
    """The ECS endpoint of a region of a cloud."""
    if cloud not in PATTERNS:
        raise UsageError(f"unknown cloud {cloud!r}; known: {', '.join(CLOUDS)}")
    return EXCEPTIONS.get((cloud, region)) or PATTERNS[cloud].replace("{region}", region)
