"""GET /v1/{project_id}/cloudservers/{server_id}: shape, initial states, determinism."""

from __future__ import annotations

import re

from sim_helpers import OTHER_PROJECT, PROJECT, SERVER, Api, ApiFactory, FakeClock, server_id

LAUNCHED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def test_server_shape(api: Api) -> None:
    answer = await api.server()
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    server = answer.body["server"]
    assert server["id"] == SERVER
    assert server["name"]
    assert server["tenant_id"] == PROJECT
    assert server["status"] == "SHUTOFF"
    assert server["OS-EXT-STS:vm_state"] == "stopped"
    assert server["OS-EXT-STS:task_state"] is None
    assert server["locked"] is False
    assert LAUNCHED_AT.fullmatch(server["OS-SRV-USG:launched_at"])
    assert STAMP.fullmatch(server["updated"]) and STAMP.fullmatch(server["created"])
    assert server["created"] < server["updated"]
    assert isinstance(server["metadata"], dict)
    (volume,) = server["os-extended-volumes:volumes_attached"]
    assert volume["device"] == "/dev/vda" and volume["bootIndex"] == "0"


async def test_initial_launch_is_well_in_the_past(api: Api, clock: FakeClock) -> None:
    server = (await api.server()).body["server"]
    # Fixed in 2020, years before the fake clock's 2027.
    assert server["OS-SRV-USG:launched_at"].startswith("2020-")


async def test_missing_and_malformed_servers_are_404(make_api: ApiFactory) -> None:
    api = await make_api(missing_rate=1.0)
    for server in (SERVER, "nope"):
        answer = await api.server(server)
        assert (answer.status, answer.code) == (404, "Ecs.0114")
        assert answer.body["error"]["details"] == []


async def test_any_project_sees_a_server_when_no_fleet_is_set(api: Api) -> None:
    answer = await api.server(project=OTHER_PROJECT)
    assert answer.status == 200
    assert answer.body["server"]["tenant_id"] == OTHER_PROJECT


async def test_running_rate_makes_servers_active(make_api: ApiFactory) -> None:
    api = await make_api(running_rate=1.0)
    server = (await api.server()).body["server"]
    assert (server["status"], server["OS-EXT-STS:vm_state"]) == ("ACTIVE", "active")


async def test_properties_do_not_depend_on_request_order(make_api: ApiFactory) -> None:
    ids = [server_id(n) for n in range(60)]
    rates = {"seed": 3, "missing_rate": 0.3, "locked_rate": 0.3, "running_rate": 0.5}

    async def view(order: list[str]) -> dict[str, tuple]:
        api = await make_api(**rates)
        seen = {}
        for sid in order:
            answer = await api.server(sid)
            server = answer.body.get("server", {})
            seen[sid] = (
                answer.status,
                server.get("status"),
                server.get("locked"),
                server.get("OS-SRV-USG:launched_at"),
            )
        return seen

    forward = await view(ids)
    assert forward == await view(list(reversed(ids)))
    statuses = {status for status, *_ in forward.values()}
    assert statuses == {200, 404}
    assert {state for _, state, _, _ in forward.values()} >= {"ACTIVE", "SHUTOFF"}
    assert {locked for _, _, locked, _ in forward.values()} >= {True, False}
