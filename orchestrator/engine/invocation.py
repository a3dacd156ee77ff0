"""What one invocation of `run`, `resume` or `retry` runs with, and what it ended with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.cloud.auth import Credentials
from orchestrator.cloud.cloudconfig import CloudConfig
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.network import CaBundle
from orchestrator.cloud.userdata import UserData
from orchestrator.engine.known_jobs import KnownJob
from orchestrator.engine.retry_select import RetryPlan, RetryRequest
from orchestrator.engine.runner import Outcome, RunSettings
from orchestrator.engine.selection import Selection
from orchestrator.inventory import InventoryDefaults
from orchestrator.nofollow import PRIVATE_FILE
from orchestrator.report import ReportPaths
from orchestrator.rollout.gate import Confirm
from orchestrator.rollout.options import RolloutOptions
from orchestrator.simulator import SimulatorConfig
from orchestrator.store import SqliteLocation, StateLocation


@dataclass(frozen=True)
class Invocation:
    """What one invocation runs with, resolved once before anything is created (for the
    command line by `orchestrator.cli.resolve`: given now, else saved in the state, else
    defaults) and only read from then on."""

    state_path: Path
    report_dir: Path
    settings: RunSettings
    inventory: Path | None = None
    defaults: InventoryDefaults = field(default_factory=InventoryDefaults)
    endpoint: str | None = None
    endpoint_template: str | None = None
    credentials: Credentials | None = None
    cloud: CloudConfig | None = None  # when set, credentials are built from it per run
    ca: CaBundle = field(default_factory=lambda: CaBundle(None, "system"))
    simulate: SimulatorConfig | None = None
    live_progress: bool | None = None
    endpoints: Endpoints | None = None  # else built from endpoint / endpoint_template
    console: Console | None = None  # where the live panel draws (default: stderr)
    options: dict[str, Any] = field(default_factory=dict)  # recorded in the runs table
    # Re-run with other request options, accepted: targets not sent yet get them.
    apply_request_options: bool = False
    group_by: str | None = None  # report.md/html: counts by this inventory column
    report_mode: int = PRIVATE_FILE  # --report-mode: permissions of the report's files
    user_data: UserData | None = None  # sent with every Cloud-Init reinstall; never recorded
    selection: Selection = field(default_factory=Selection)  # run: part of the inventory
    # retry: what to send again, chosen (and checked) before the invocation starts
    retry: tuple[RetryRequest, RetryPlan] | None = None
    # Where the state lives when not the SQLite file `state_path` (a PostgreSQL campaign).
    location: StateLocation | None = None

    @property
    def state(self) -> StateLocation:
        return self.location or SqliteLocation(self.state_path)

    rollout: RolloutOptions = field(default_factory=RolloutOptions)
    ack_failures: bool = False  # --ack-failures: earlier failures stop counting
    confirm: Confirm | None = None  # --confirm-waves: asks the operator before each wave
    adaptive: bool = True  # follow the service's throttling below --rate / --poll-rate
    # --journal-lost: the state file's log is lost for good; settle every unfinished
    # target from its server before anything is sent.
    journal_lost: bool = False
    known_jobs: tuple[KnownJob, ...] = ()  # --known-job / --known-jobs
    # Where the run tells how it goes: webhooks (never recorded: a webhook's URL is
    # often its secret) and Prometheus metrics (a file, a loopback port).
    notify: tuple[str, ...] = ()
    metrics_file: Path | None = None
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"


@dataclass
class Result:
    outcome: Outcome
    report: ReportPaths | None
    run_id: str
    report_error: str | None = None
    requests: dict[str, int] = field(default_factory=dict)  # sent by this invocation, by kind
