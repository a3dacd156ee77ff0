"""What the engine needs from the cloud: `Cloud`, and the results its calls return.

    reinstall_slot(region)          wait for a reinstall's grant (its intent is
                                    committed after this)
    reinstall_spacing(region)       wait for its send slot; a stop interrupts it
    reinstall(spec) -> job_id       send one reinstall
    job(project, job_id) -> JobView
    server(project, server) -> ServerView
    servers_page(project, page, limit, status=) -> ServerPage    the v1 list, by page
    servers_changed(project, since, limit, marker=, status=) -> ServerChanges
                                    Nova's list, by marker and changes-since
    stop_sending(error) -> int      reinstalls waiting for their slot raise error()
    set_rates(submit, poll)         the ceilings in force (--rate, --poll-rate, a share)
    adaptive_rates()                the adapted rates, for the live view and the report
    service_clock, requests, throttled   what the calls have learned and counted

Two implementations: `orchestrator.cloud.client.EcsClient` (the ECS API over HTTP)
and `orchestrator.cloud.fake.InMemoryCloud` (the simulator's rules in memory, for
the runner's unit tests). Both raise only `orchestrator.errors`' ApiErrors, chosen
by `orchestrator.cloud.answers` from what the service answered (or did not);
`orchestrator.engine.decisions` says what each means for a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from orchestrator.clocks import ServiceClock
from orchestrator.cloud.views import JobView, ServerChanges, ServerPage, ServerView, TraceView
from orchestrator.model import TargetSpec

__all__ = ["Cloud", "JobView", "ServerChanges", "ServerPage", "ServerView", "TraceView"]


class Cloud(Protocol):
    """The ECS calls a run makes, paced, and what they count."""

    @property
    def service_clock(self) -> ServiceClock:
        """The service's clock, as learned from the Date of every answer."""
        ...

    @property
    def requests(self) -> Counter[str]:
        """Requests sent (or that may have been), by kind: reinstall, job, server, list."""
        ...

    @property
    def throttled(self) -> int:
        """Answers that throttled a request."""
        ...

    async def reinstall_slot(self, region: str | None) -> None:
        """Wait until a reinstall to `region` may be sent: the grant."""
        ...

    async def reinstall_spacing(self, region: str | None) -> None:
        """The send slot of a granted reinstall; `stop_sending` interrupts it."""
        ...

    async def reinstall(self, spec: TargetSpec) -> str:
        """Send one reinstall now; the job id the service answered."""
        ...

    async def job(self, project_id: str, job_id: str, region: str | None = None) -> JobView:
        """Ask the service about a job (paced)."""
        ...

    async def server(
        self, project_id: str, server_id: str, region: str | None = None
    ) -> ServerView:
        """Read a server (paced)."""
        ...

    async def servers_page(
        self,
        project_id: str,
        page: int,
        limit: int,
        status: str | None = None,
        region: str | None = None,
    ) -> ServerPage:
        """Read page `page` (1 first) of the project's servers, `limit` a page (paced as a
        read); `ServerPage.next_page` names the next one."""
        ...

    async def servers_changed(
        self,
        project_id: str,
        since: datetime,
        limit: int,
        marker: str | None = None,
        status: str | None = None,
        region: str | None = None,
    ) -> ServerChanges:
        """Read the project's servers updated at or after `since`, after the server
        `marker` (paced as a read); `ServerChanges.next_marker` names the next page."""
        ...

    async def traces(
        self, project_id: str, server_id: str, since: datetime, region: str | None = None
    ) -> list[TraceView]:
        """The cloud's audit trail (CTS) about the server since `since`: its records."""
        ...

    def stop_sending(self, error: Callable[[], BaseException]) -> int:
        """Every reinstall waiting for its send slot raises `error()` now; how many."""
        ...

    def set_rates(self, submit: float, poll: float) -> None:
        """The ceilings in force: reinstalls and reads per second."""
        ...

    def adaptive_rates(self) -> dict[str, dict[str, float]]:
        """The adapted rate per API and endpoint; empty without adaptive pacing."""
        ...
