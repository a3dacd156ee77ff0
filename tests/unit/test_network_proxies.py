"""Proxies from the environment, looked up once per origin instead of per request."""

from __future__ import annotations

import pytest

from orchestrator.network import CaBundle, new_session, proxy_for

SYSTEM = CaBundle(None, "system")


async def test_proxies_follow_the_environment_once_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    async with new_session(4, SYSTEM) as session:
        assert not session.trust_env  # no per-request proxy lookup or ~/.netrc read
        via = proxy_for(session, "https://ecs.eu-de.example/v1/p/jobs/j")
        assert str(via["proxy"]) == "http://proxy.internal:3128"
        assert proxy_for(session, "https://direct.example/v1/p") == {}  # NO_PROXY
        # Read once per origin: a later change of the environment is not picked up mid-run.
        monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
        assert proxy_for(session, "https://ecs.eu-de.example/v1/other") == via
        assert str(proxy_for(session, "https://new.example")["proxy"]) == "http://other:1"


async def test_a_session_without_proxies_never_uses_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    async with new_session(4, SYSTEM, proxies=False) as session:
        assert proxy_for(session, "https://ecs.eu-de.example/v1/p") == {}
