"""Endpoints: https anywhere, plain http only to loopback, no credentials in the URL."""

from __future__ import annotations

import re

import pytest

from orchestrator.cloud import regions
from orchestrator.cloud.endpoints import Endpoints, check_endpoint, is_loopback
from orchestrator.errors import UsageError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ecs.eu-de.otc.t-systems.com", "https://ecs.eu-de.otc.t-systems.com"),
        ("https://ecs.eu-de.otc.t-systems.com/", "https://ecs.eu-de.otc.t-systems.com"),
        ("https://10.1.2.3:8443", "https://10.1.2.3:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.10.0.1", "http://127.10.0.1"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://LOCALHOST:9000", "http://LOCALHOST:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_accepted_endpoints(url: str, expected: str) -> None:
    assert check_endpoint(url) == expected
    assert Endpoints(endpoint=url).for_region(None) == expected
    assert Endpoints(endpoint=url).for_region("eu-nl") == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://ecs.eu-de.otc.t-systems.com",
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://[2001:db8::1]:80",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://0.0.0.0:8080",
    ],
)
def test_plain_http_to_other_hosts_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="https"):
        check_endpoint(url)
    with pytest.raises(UsageError):
        Endpoints(endpoint=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t-pw@ecs.eu-de.otc.t-systems.com",
        "https://user@ecs.eu-de.otc.t-systems.com",
        "http://user:s3cr3t-pw@127.0.0.1:8080",
        "https://:s3cr3t-pw@ecs.eu-de.otc.t-systems.com",
    ],
)
def test_userinfo_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(UsageError, match="credentials") as info:
        check_endpoint(url)
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://ecs.example.com",
        "ecs.eu-de.otc.t-systems.com",
        "https://",
        "https://ecs.example.com/?x=1",
        "https://ecs.example.com/#frag",
        "",
    ],
)
def test_malformed_endpoints_are_refused(url: str) -> None:
    with pytest.raises(UsageError):
        check_endpoint(url)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_template_is_filled_from_the_region() -> None:
    endpoints = Endpoints(template="https://ecs.{region}.otc.t-systems.com")
    assert endpoints.for_region("eu-de") == "https://ecs.eu-de.otc.t-systems.com"
    assert endpoints.for_region("eu-nl") == "https://ecs.eu-nl.otc.t-systems.com"


def test_template_must_name_the_region() -> None:
    with pytest.raises(UsageError, match=r"\{region\}"):
        Endpoints(template="https://ecs.eu-de.otc.t-systems.com")


def test_template_needs_a_region_for_each_target() -> None:
    endpoints = Endpoints(template="https://ecs.{region}.otc.t-systems.com")
    for region in (None, ""):
        with pytest.raises(UsageError, match="region"):
            endpoints.for_region(region)


def test_template_is_checked_like_an_endpoint() -> None:
    with pytest.raises(UsageError, match="https"):
        Endpoints(template="http://ecs.{region}.otc.t-systems.com")
    with pytest.raises(UsageError, match="credentials"):
        Endpoints(template="https://u:p@ecs.{region}.otc.t-systems.com")
    assert Endpoints(template="http://localhost:8080/{region}").for_region("eu-de") == (
        "http://localhost:8080/eu-de"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # Neither, and no cloud or catalog to fall back on.
        ({}, "give --endpoint, --endpoint-template or --cloud"),
        (
            {"endpoint": "https://a.example.com", "template": "https://{region}.example.com"},
            "exactly one",
        ),
    ],
)
def test_exactly_one_of_endpoint_and_template(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Endpoints(**kwargs)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://ecs.example:70000", "Port out of range"),
        ("https://ecs.example:http", "Port could not be cast"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:0", "port 0"),
        ("https://ecs.exa mple", "spaces or control characters"),
        ("https://ecs.example/\x1b[31m", "spaces or control characters"),
        ("https://" + "a" * 64 + ".example", "not a usable URL"),
    ],
)
def test_endpoints_that_cannot_be_connected_to_are_usage_errors(url: str, words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)):
        check_endpoint(url)


@pytest.mark.parametrize(
    ("cloud", "region", "url"),
    [
        # Open Telekom Cloud's endpoint list: the Swiss cloud lives under sc.
        ("otc", "eu-de", "https://ecs.eu-de.otc.t-systems.com"),
        ("otc", "eu-nl", "https://ecs.eu-nl.otc.t-systems.com"),
        ("otc", "eu-ch2", "https://ecs.eu-ch2.sc.otc.t-systems.com"),
        # Huawei Cloud's SDK (EcsRegion): the pattern, and the one exception.
        ("huawei", "ap-southeast-1", "https://ecs.ap-southeast-1.myhuaweicloud.com"),
        ("huawei", "eu-west-101", "https://ecs.eu-west-101.myhuaweicloud.eu"),
    ],
)
def test_known_endpoints_by_region(cloud: regions.CloudName, region: str, url: str) -> None:
    assert regions.ecs_endpoint(cloud, region) == url


# The official Python SDK's table (huaweicloud-sdk-python-v3,
# huaweicloud-sdk-ecs/huaweicloudsdkecs/v2/region/ecs_region.py, commit 005c9666),
# copied by hand: a region added or moved there is added here and in the table.
SDK_ECS_REGIONS = {
    "cn-north-1": "https://ecs.cn-north-1.myhuaweicloud.com",
    "cn-north-4": "https://ecs.cn-north-4.myhuaweicloud.com",
    "cn-south-1": "https://ecs.cn-south-1.myhuaweicloud.com",
    "cn-east-2": "https://ecs.cn-east-2.myhuaweicloud.com",
    "cn-east-3": "https://ecs.cn-east-3.myhuaweicloud.com",
    "cn-southwest-2": "https://ecs.cn-southwest-2.myhuaweicloud.com",
    "ap-southeast-1": "https://ecs.ap-southeast-1.myhuaweicloud.com",
    "ap-southeast-2": "https://ecs.ap-southeast-2.myhuaweicloud.com",
    "ap-southeast-3": "https://ecs.ap-southeast-3.myhuaweicloud.com",
    "af-south-1": "https://ecs.af-south-1.myhuaweicloud.com",
    "sa-brazil-1": "https://ecs.sa-brazil-1.myhuaweicloud.com",
    "la-north-2": "https://ecs.la-north-2.myhuaweicloud.com",
    "cn-south-4": "https://ecs.cn-south-4.myhuaweicloud.com",
    "na-mexico-1": "https://ecs.na-mexico-1.myhuaweicloud.com",
    "la-south-2": "https://ecs.la-south-2.myhuaweicloud.com",
    "cn-south-2": "https://ecs.cn-south-2.myhuaweicloud.com",
    "cn-north-9": "https://ecs.cn-north-9.myhuaweicloud.com",
    "cn-north-2": "https://ecs.cn-north-2.myhuaweicloud.com",
    "ap-southeast-4": "https://ecs.ap-southeast-4.myhuaweicloud.com",
    "tr-west-1": "https://ecs.tr-west-1.myhuaweicloud.com",
    "me-east-1": "https://ecs.me-east-1.myhuaweicloud.com",
    "ae-ad-1": "https://ecs.ae-ad-1.myhuaweicloud.com",
    "eu-west-101": "https://ecs.eu-west-101.myhuaweicloud.eu",
    "cn-east-5": "https://ecs.cn-east-5.myhuaweicloud.com",
    "eu-west-0": "https://ecs.eu-west-0.myhuaweicloud.com",
    "my-kualalumpur-1": "https://ecs.my-kualalumpur-1.myhuaweicloud.com",
}
# Open Telekom Cloud's endpoint list (opentelekomcloud-docs/regions-and-endpoints,
# doc/source/index.rst) for eu-de and eu-nl; the Swiss cloud's services live under
# sc.otc.t-systems.com (its documentation; IAM at iam-pub.eu-ch2.sc.otc.t-systems.com).
OTC_ECS_REGIONS = {
    "eu-de": "https://ecs.eu-de.otc.t-systems.com",
    "eu-nl": "https://ecs.eu-nl.otc.t-systems.com",
    "eu-ch2": "https://ecs.eu-ch2.sc.otc.t-systems.com",
}


@pytest.mark.parametrize(
    ("cloud", "published"), [("huawei", SDK_ECS_REGIONS), ("otc", OTC_ECS_REGIONS)]
)
def test_every_known_region_is_the_published_one(
    cloud: regions.CloudName, published: dict[str, str]
) -> None:
    assert sorted(regions.KNOWN[cloud]) == sorted(published)
    assert {r: regions.ecs_endpoint(cloud, r) for r in regions.KNOWN[cloud]} == published
