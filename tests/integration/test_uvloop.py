"""The ECS calls on uvloop (ORCHESTRATOR_LOOP=uvloop), not only on the standard loop.

The http1 pool opens its connections with the loop's own `create_connection`, whose
arguments differ between the two loops (uvloop has no happy eyeballs): a reinstall,
its job and the server read, over one kept-alive connection, against the simulator.
"""

from __future__ import annotations

import pytest
from client_helpers import PROJECT, server_id, sim_client, spec

from orchestrator.network import CaBundle, new_session

uvloop = pytest.importorskip("uvloop")


def test_a_reinstall_its_job_and_the_server_read_over_uvloop() -> None:
    async def scenario() -> tuple[str, str, str | None, int]:
        async with new_session(8, CaBundle(None, "system"), proxies=False) as session:
            fleet = ((PROJECT, server_id(1)),)
            async with sim_client(session, fleet=fleet, job_seconds=(0.0, 0.0)) as (_, client):
                job_id = await client.reinstall(spec(1))
                job = await client.job(PROJECT, job_id)
                server = await client.server(PROJECT, server_id(1))
                made = client._pool.connections_made
                await client.aclose()
                return job_id, job.job_id, server.status, made

    job_id, followed, status, connections = uvloop.run(scenario())
    assert job_id and followed == job_id
    assert status is not None
    assert connections == 1  # kept alive across the three calls
