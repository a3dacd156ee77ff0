"""Proxies from the environment (standard library), looked up once per origin."""

from __future__ import annotations

import pytest
from yarl import URL

from orchestrator.cloud.network import Proxies


def test_proxies_follow_the_environment_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example,.corp.example")
    proxies = Proxies()
    via = proxies.for_url(URL("https://ecs.eu-de.example/v1/p/jobs/j"))
    assert via == URL("http://proxy.internal:3128")
    assert proxies.for_url(URL("https://direct.example/v1/p")) is None  # NO_PROXY
    assert proxies.for_url(URL("https://ecs.corp.example:8443/v1")) is None  # a domain in it
    assert proxies.for_url(URL("http://ecs.eu-de.example/v1")) is None  # no HTTP_PROXY
    # Read once per origin: a later change of the environment is not picked up mid-run.
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
    assert proxies.for_url(URL("https://ecs.eu-de.example/v1/other")) == via
    assert proxies.for_url(URL("https://new.example")) == URL("http://other:1")


def test_a_proxy_keeps_its_credentials_and_defaults_to_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "proxy.internal:8080")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxies = Proxies()
    secure = proxies.for_url(URL("https://ecs.example"))
    assert secure is not None and (secure.user, secure.password) == ("user", "p@ss")
    assert proxies.for_url(URL("http://ecs.example")) == URL("http://proxy.internal:8080")


def test_proxies_off_never_use_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    assert Proxies(from_environment=False).for_url(URL("https://ecs.eu-de.example/v1")) is None
