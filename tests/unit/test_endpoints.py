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
