"""Shared helpers of the simulator tests: IDs, bodies, a fake clock, an HTTP API wrapper."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from orchestrator.simulator import Simulator

PROJECT = "0123456789abcdef0123456789abcdef"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
SERVER = "0b3a8a5c-6c9f-4c2a-9f59-6d1c1c2d3e4f"
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z: the fake clock's first reading


def server_id(n: int) -> str:
    """A well-formed server ID per n."""
    return f"00000000-0000-4000-8000-{n:012x}"


def reinstall_body(**spec: Any) -> dict[str, Any]:
    """A valid reinstall body; keyword arguments override or add os-reinstall fields."""
    return {"os-reinstall": {"keyname": "KeyPair-350b", "userid": "u-1", **spec}}


class FakeClock:
    """Wall clock under the test's control: time moves only when told to."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    @property
    def code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error["code"] if error else None


class Api:
    """Sends the three API requests to a simulator over loopback HTTP."""

    def __init__(self, session: aiohttp.ClientSession, sim: Simulator) -> None:
        self.session = session
        self.sim = sim

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if body is not None:
            data = json.dumps(body).encode()
        async with self.session.request(
            method, self.sim.url + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            return Answer(response.status, json.loads(text) if text else None, response.headers)

    async def reinstall(
        self,
        server: str = SERVER,
        body: Any = None,
        *,
        project: str = PROJECT,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if body is None and data is None:
            body = reinstall_body()
        path = f"/v1/{project}/cloudservers/{server}/reinstallos"
        return await self.call("POST", path, body=body, data=data, headers=headers)

    async def reinstall_v2(
        self,
        server: str = SERVER,
        body: Any = None,
        *,
        project: str = PROJECT,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """The Cloud-Init variant: POST /v2/{project}/cloudservers/{server}/reinstallos."""
        if body is None and data is None:
            body = reinstall_body()
        path = f"/v2/{project}/cloudservers/{server}/reinstallos"
        return await self.call("POST", path, body=body, data=data, headers=headers)

    async def job(
        self, job_id: str, *, project: str = PROJECT, headers: dict[str, str] | None = None
    ) -> Answer:
        return await self.call("GET", f"/v1/{project}/jobs/{job_id}", headers=headers)

    async def server(
        self, server: str = SERVER, *, project: str = PROJECT, headers: dict[str, str] | None = None
    ) -> Answer:
        return await self.call("GET", f"/v1/{project}/cloudservers/{server}", headers=headers)

    async def list_v1(
        self, *, project: str = PROJECT, headers: dict[str, str] | None = None, **params: Any
    ) -> Answer:
        """GET /v1/{project}/cloudservers/detail?PARAMS (offset, limit, status)."""
        path = f"/v1/{project}/cloudservers/detail"
        return await self.call("GET", f"{path}?{urlencode(params)}", headers=headers)

    async def list_nova(
        self,
        *,
        project: str = PROJECT,
        version: str = "v2.1",
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> Answer:
        """GET /v2.1/{project}/servers/detail?PARAMS (changes-since as since=, limit,
        marker, status)."""
        if "since" in params:
            params["changes-since"] = params.pop("since")
        path = f"/{version}/{project}/servers/detail"
        return await self.call("GET", f"{path}?{urlencode(params)}", headers=headers)

    async def view(self, server: str = SERVER) -> tuple[str, str | None, str, str, str]:
        """(status, task_state, vm_state, updated, launched_at) of a server."""
        answer = await self.server(server)
        assert answer.status == 200, answer.body
        s = answer.body["server"]
        return (
            s["status"],
            s["OS-EXT-STS:task_state"],
            s["OS-EXT-STS:vm_state"],
            s["updated"],
            s["OS-SRV-USG:launched_at"],
        )

    async def stats(self) -> dict[str, Any]:
        async with self.session.get(self.sim.url + "/_sim/stats") as response:
            assert response.status == 200
            return await response.json()


# make_api(**config_fields) -> Api, the factory fixture of conftest.py.
ApiFactory = Callable[..., Awaitable["Api"]]
