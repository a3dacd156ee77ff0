"""The in-memory cloud: `Cloud` without HTTP, for the runner's unit tests.

    cloud = InMemoryCloud(SimulatorConfig(job_seconds=(0.05, 0.05)))
    cloud.script("reinstall", Scripted.DROP)      # the next reinstall acted on loses its answer
    outcome = await Runner(store, cloud, settings).run(stop)
    assert [c.acted for c in cloud.reinstalls()] == [True]
    assert cloud.overlapping() == {}

Like procrastinate's `InMemoryConnector`, it ships with the package and implements
the interface the engine uses (`orchestrator.cloud.interface.Cloud`), so the
runner's logic is tested against it in milliseconds; the HTTP simulator over
loopback is the integration tier (docs/testing.md).

It cannot drift from the real client or the simulator, because it reimplements
neither (tests/integration/test_fake_parity.py compares it with the client over HTTP):

    the service    the simulator's own handlers (`orchestrator.simulator.app`'s
                   `SimulatorApp`), called directly: the same World, jobs, servers,
                   checks in the same order (auth, policy, rate limit, faults, the
                   server's state), and the same answers (status, headers, body) the
                   aiohttp application sends, its Date header included
    the answers    read by the client's own functions (`orchestrator.cloud.answers`):
                   the same results and the same ApiError for every answer; an answer
                   the simulator drops (the connection closed after acting) is
                   `answers.no_answer`, as the client raises for a lost answer
                   (OutcomeUnknown for a reinstall, RetryLater for a read)
    credentials    the client's (`TokenAuth`, `AkSkAuth`: headers and signatures as
                   sent over HTTP, checked by the simulator's authenticator); IAM
                   password credentials need HTTP and are not for the fake
    pacing         the limiters given (`orchestrator.engine.pacing`), none by default

What it does not do: connections (no NotSent, no Unreachable, no TLS, no proxy),
timeouts (a slow answer comes late rather than never), regions (one service answers
every region), adaptive pacing (`adaptive_rates` is empty). The simulator's
`latency_ms` and slow answers still take real (event-loop) time.

Faults come from the `SimulatorConfig` rates (seeded draws) and from a script
(`script`: the next request of a kind meets exactly this fault). Every request is
recorded (`calls`: what was asked, what the service did, what the caller got), and
the World's own counters say whether a reinstall ever reached a server while one
was under way (`overlapping`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from orchestrator.clocks import ServiceClock
from orchestrator.cloud import answers
from orchestrator.cloud.auth import Credentials
from orchestrator.cloud.client import JSON_HEADERS
from orchestrator.cloud.credential_gate import CredentialGate
from orchestrator.cloud.queries import Query, changes_query, page_query, trace_query
from orchestrator.cloud.views import JobView, ServerChanges, ServerPage, ServerView, TraceView
from orchestrator.engine.pacing import Limiter, Unlimited
from orchestrator.errors import ApiError, Throttled
from orchestrator.model import TargetSpec
from orchestrator.simulator.app import Answer as ServiceAnswer
from orchestrator.simulator.app import Call, SimulatorApp
from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.faults import Scripted, ScriptedFaults
from orchestrator.simulator.jobs import Job
from orchestrator.simulator.reinstall import WITH_STOP_SERVER, ReinstallRequest
from orchestrator.simulator.world import World

if TYPE_CHECKING:
    from orchestrator.cloud.interface import Cloud

__all__ = ["Exchange", "InMemoryCloud", "Scripted"]

R = TypeVar("R")

# Where the requests "go": named in errors as the client names its URL; never resolved.
BASE_URL = "in-memory://ecs"
_AUTHORITY = "ecs.in-memory"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request to the in-memory cloud: what was asked, what the service did, and
    what the caller got."""

    kind: str  # reinstall, job, server, list
    project_id: str
    subject: str  # the server (reinstall, server), the job (job), a list's query (list)
    region: str | None
    at: float  # the service's clock when it arrived (epoch seconds)
    status: int | None  # the HTTP status answered; None: no answer (dropped)
    code: str | None  # the service's error code, where it answered one
    # A reinstall the service acted on: the job it started, whether or not the
    # caller was told. None: not acted on (refused, or not a reinstall).
    job_id: str | None
    raised: type[ApiError] | None  # what the call raised; None: it returned

    @property
    def acted(self) -> bool:
        return self.job_id is not None


class InMemoryCloud:
    """`Cloud` on the simulator's rules, in memory (see the module docstring).

    `config`: the service (its fleet, timings, fault rates, auth; default: every
    well-formed server exists, jobs take 2-5 s). `credentials`: sent as the client
    sends them (needed when `config` asks for a token or a key pair).
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        credentials: Credentials | None = None,
        submit_limiter: Limiter | None = None,
        poll_limiter: Limiter | None = None,
        user_data: str | None = None,
        service_clock: ServiceClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self._faults = ScriptedFaults(self.config)
        self._sim = SimulatorApp(self.config, faults=self._faults)
        self._credentials = credentials
        self._gate = CredentialGate(key_pair=credentials is not None and credentials.kind == "aksk")
        self._submit_limiter: Limiter = submit_limiter or Unlimited()
        self._poll_limiter: Limiter = poll_limiter or Unlimited()
        self._user_data = user_data
        self._monotonic = monotonic
        self.service_clock = service_clock or ServiceClock(monotonic=monotonic)
        self.requests: Counter[str] = Counter()  # sent, by kind
        self.throttled = 0
        self.calls: list[Exchange] = []  # every request, in the order they arrived

    # -- what tests set up and look at -----------------------------------------------

    @property
    def world(self) -> World:
        """The simulated service's state: servers, jobs, counters."""
        return self._sim.world

    def now(self) -> float:
        """The service's clock, epoch seconds."""
        return self._sim.now()

    def script(self, kind: str, *faults: Scripted) -> None:
        """The next requests of `kind` (reinstall, job, server, list_v1, list_nova) meet
        `faults`, in order (see `orchestrator.simulator.faults.ScriptedFaults`)."""
        self._faults.script(kind, *faults)

    def unmet(self) -> dict[str, list[Scripted]]:
        """Scripted faults no request has met yet, by kind."""
        return self._faults.left()

    def reinstalls(self, server_id: str | None = None) -> list[Exchange]:
        """The reinstall requests sent (to `server_id`), in order."""
        return [
            c
            for c in self.calls
            if c.kind == "reinstall" and (server_id is None or c.subject == server_id)
        ]

    def overlapping(self) -> dict[str, int]:
        """Reinstall requests that reached a server while a job of it was under way,
        by server: the service refuses them, and a correct run never sends one."""
        return dict(self.world.stats.overlapping_by_server)

    def stats(self) -> dict[str, Any]:
        """The simulator's counters, as `GET /_sim/stats` answers them."""
        return self._sim.stats()

    def someone_else_reinstalls(self, project_id: str, server_id: str) -> Job:
        """Another tool reinstalls this server now (with withStopServer): its job keeps
        the server busy, not by this run. Not recorded in `calls`; raises the
        simulator's ApiFault if the service would refuse it."""
        request = ReinstallRequest("someone-elses-key", "someone-else", WITH_STOP_SERVER, None)
        return self.world.reinstall(project_id, server_id, request, self.now())

    # -- Cloud -----------------------------------------------------------------------

    async def reinstall_slot(self, region: str | None) -> None:
        await self._submit_limiter.acquire()

    async def reinstall_spacing(self, region: str | None) -> None:
        await self._submit_limiter.space()

    async def reinstall(self, spec: TargetSpec) -> str:
        path = f"/{spec.api}/{spec.project_id}/cloudservers/{spec.server_id}/reinstallos"
        body = json.dumps(spec.reinstall_body(self._user_data), separators=(",", ":")).encode()
        handler = self._sim.reinstall_v2 if spec.api == "v2" else self._sim.reinstall
        server = self.world.fleet.get(spec.project_id, spec.server_id)
        last = server.last_job if server is not None else None

        def acted() -> str | None:
            job = server.last_job if server is not None else None
            return job.job_id if job is not None and job is not last else None

        def route(call: Call) -> Awaitable[ServiceAnswer]:
            return handler(call, project_id=spec.project_id, server_id=spec.server_id)

        return await self._exchange(
            "reinstall",
            "POST",
            spec.project_id,
            spec.server_id,
            spec.region,
            path,
            body,
            route,
            answers.reinstall_outcome,
            acted,
        )

    async def job(self, project_id: str, job_id: str, region: str | None = None) -> JobView:
        await self._poll_limiter.acquire()
        await self._poll_limiter.space()

        def route(call: Call) -> Awaitable[ServiceAnswer]:
            return self._sim.get_job(call, project_id=project_id, job_id=job_id)

        return await self._exchange(
            "job",
            "GET",
            project_id,
            job_id,
            region,
            f"/v1/{project_id}/jobs/{job_id}",
            b"",
            route,
            lambda a, where: answers.job_outcome(a, job_id, where),
        )

    async def server(
        self, project_id: str, server_id: str, region: str | None = None
    ) -> ServerView:
        await self._poll_limiter.acquire()
        await self._poll_limiter.space()

        def route(call: Call) -> Awaitable[ServiceAnswer]:
            return self._sim.get_server(call, project_id=project_id, server_id=server_id)

        return await self._exchange(
            "server",
            "GET",
            project_id,
            server_id,
            region,
            f"/v1/{project_id}/cloudservers/{server_id}",
            b"",
            route,
            lambda a, where: answers.server_outcome(a, server_id, where),
        )

    async def servers_page(
        self,
        project_id: str,
        page: int,
        limit: int,
        status: str | None = None,
        region: str | None = None,
    ) -> ServerPage:
        query = page_query(page, limit, status)
        return await self._list(
            project_id,
            region,
            f"/v1/{project_id}/cloudservers/detail",
            query,
            self._sim.list_v1,
            lambda a, where: answers.server_page_outcome(a, page, limit, where),
        )

    async def traces(
        self, project_id: str, server_id: str, since: datetime, region: str | None = None
    ) -> list[TraceView]:
        query = trace_query(server_id, since)

        def route(call: Call) -> Awaitable[ServiceAnswer]:
            return self._sim.list_traces(call, project_id=project_id)

        return await self._exchange(
            "trace",
            "GET",
            project_id,
            server_id,
            region,
            f"/v3/{project_id}/traces",
            b"",
            route,
            answers.traces_outcome,
            query=query,
        )

    async def servers_changed(
        self,
        project_id: str,
        since: datetime,
        limit: int,
        marker: str | None = None,
        status: str | None = None,
        region: str | None = None,
    ) -> ServerChanges:
        query = changes_query(since, limit, marker, status)
        return await self._list(
            project_id,
            region,
            f"/v2.1/{project_id}/servers/detail",
            query,
            self._sim.list_nova,
            lambda a, where: answers.server_changes_outcome(a, limit, where),
        )

    async def _list(
        self,
        project_id: str,
        region: str | None,
        path: str,
        query: Query,
        handler: Callable[..., Awaitable[ServiceAnswer]],
        outcome: Callable[[answers.Answer, str], R],
    ) -> R:
        await self._poll_limiter.acquire()
        await self._poll_limiter.space()

        def route(call: Call) -> Awaitable[ServiceAnswer]:
            return handler(call, project_id=project_id)

        subject = urlencode(query)
        return await self._exchange(
            "list", "GET", project_id, subject, region, path, b"", route, outcome, query=query
        )

    def stop_sending(self, error: Callable[[], BaseException]) -> int:
        waiting = self._submit_limiter.interrupt_waiting(error)
        return waiting + self._submit_limiter.interrupt_spacing(error)

    def set_rates(self, submit: float, poll: float) -> None:
        self._submit_limiter.set_rate(submit)
        self._poll_limiter.set_rate(poll)

    def adaptive_rates(self) -> dict[str, dict[str, float]]:
        return {}

    # -- one request -------------------------------------------------------------------

    async def _exchange(
        self,
        kind: str,
        method: str,
        project_id: str,
        subject: str,
        region: str | None,
        path: str,
        body: bytes,
        route: Callable[[Call], Awaitable[ServiceAnswer]],
        outcome: Callable[[answers.Answer, str], R],
        acted: Callable[[], str | None] = lambda: None,
        query: Query = (),
    ) -> R:
        """Send once (twice after a 401 renewed credentials may cure, as the client
        does), read the answer with `outcome`, and record it all."""
        where = f"{BASE_URL}{path}"
        arrived = self.now()
        answer: answers.Answer | None = None
        try:
            answer = await self._send(kind, method, project_id, path, body, route, query)
            result = outcome(answer, where)
        except ApiError as exc:
            if isinstance(exc, Throttled):
                self.throttled += 1
            self._record(kind, project_id, subject, region, arrived, answer, acted(), exc)
            raise
        self._record(kind, project_id, subject, region, arrived, answer, acted(), None)
        return result

    async def _send(
        self,
        kind: str,
        method: str,
        project_id: str,
        path: str,
        body: bytes,
        route: Callable[[Call], Awaitable[ServiceAnswer]],
        query: Query = (),
    ) -> answers.Answer:
        """The simulator's answer as the client would read it off the wire: the status,
        the headers of a refusal, the body parsed; a dropped answer raised. A key pair's
        requests pass its gate, as the client's do."""
        async with self._gate.turn():
            return await self._send_once(kind, method, project_id, path, body, route, query)

    async def _send_once(
        self,
        kind: str,
        method: str,
        project_id: str,
        path: str,
        body: bytes,
        route: Callable[[Call], Awaitable[ServiceAnswer]],
        query: Query,
    ) -> answers.Answer:
        creds = self._credentials
        for attempt in (1, 2):
            if creds is not None:
                await creds.prepare(project_id)
            headers = (
                creds.headers(method, _AUTHORITY, path, project_id, body, JSON_HEADERS, query)
                if creds is not None
                else dict(JSON_HEADERS)
            )
            self.requests[kind] += 1
            sent_at = self._monotonic()
            answer = await route(Call(method, path, query, headers, body, BASE_URL))
            if answer.drop:
                # The connection closed instead of the answer: what the client raises
                # for a request sent and never answered.
                raise answers.no_answer(kind, "the connection was closed")
            # The aiohttp application writes the service's Date on every answer.
            self.service_clock.observe(self._sim.date(), sent_at, self._monotonic())
            # As the client reads them: only a refusal's headers (Retry-After).
            refusal: Mapping[str, str] = dict(answer.headers) if answer.status >= 300 else {}
            read = answers.answer_of(kind, answer.status, refusal, answer.body)
            self._gate.answered(read, f"HTTP {read.status} {read.code or ''}".rstrip())
            renewable = read.auth_refused and attempt == 1 and creds is not None
            if renewable and creds is not None and await creds.renew(project_id, headers):
                continue
            break
        return read

    def _record(
        self,
        kind: str,
        project_id: str,
        subject: str,
        region: str | None,
        at: float,
        answer: answers.Answer | None,
        job_id: str | None,
        raised: ApiError | None,
    ) -> None:
        status = None if answer is None else answer.status
        code = None if answer is None else answer.code
        error = None if raised is None else type(raised)
        self.calls.append(
            Exchange(kind, project_id, subject, region, at, status, code, job_id, error)
        )


if TYPE_CHECKING:
    # mypy checks here that the fake is what the engine needs.
    _IS_A_CLOUD: type[Cloud] = InMemoryCloud
