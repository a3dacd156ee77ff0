"""The runner's logic on the in-memory cloud: a real state file, no HTTP, fractions of a second.

Each test runs `Runner` on a SQLite state file in tmp_path against
`orchestrator.cloud.fake.InMemoryCloud` (the simulator's rules in memory) with
fast settings, and asserts on the state file and on the requests the cloud
recorded: above all, that no reinstall ever reached a server while one of its
reinstalls may have been under way. The same paths over loopback HTTP are the
integration tier (tests/integration).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cloud.auth import AkSkAuth, Credentials, TokenAuth
from orchestrator.cloud.fake import Exchange, InMemoryCloud, Scripted
from orchestrator.cloud.retry_policy import RetrySettings
from orchestrator.engine.pacing import RateLimiter
from orchestrator.engine.runner import Outcome, Runner, RunSettings
from orchestrator.errors import ApiError, CommandUnderWay, OutcomeUnknown
from orchestrator.model import Target, TargetSpec, TargetState
from orchestrator.simulator import SimulatorConfig
from orchestrator.store.sqlite import StateStore

pytestmark = pytest.mark.timeout(20)

S = TargetState
PROJECT = "0123456789abcdef0123456789abcdef"
RUN_LIMIT = 5.0  # seconds: a run that takes longer hangs (each here takes well under one)
JOB = (0.05, 0.05)  # seconds a job takes, unless a test says otherwise


def server_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012x}"


def spec(n: int, **changes: Any) -> TargetSpec:
    return TargetSpec(PROJECT, server_id(n), "fleet-key", "user-1", n + 2, **changes)


FAST = RunSettings(
    rate=10.0,
    poll_rate=20.0,
    first_poll=0.02,
    poll_cap=0.05,
    settle_delay=0.02,
    settle_quiet=0.2,  # longer than any queue below: a queued job shows within it
    clock_margin=0.0,  # one simulated service: its answers and timestamps share a clock
    drain_timeout=2.0,
    job_timeout=5.0,
    retry=RetrySettings(attempts=4, max_delay=2.0, backoff_base=0.01, backoff_cap=0.05),
    busy_recheck_delay=0.1,
)


def fast(**changes: Any) -> RunSettings:
    return replace(FAST, **changes)


def sim(**fields: Any) -> SimulatorConfig:
    fields.setdefault("job_seconds", JOB)
    return SimulatorConfig(**fields)


class Run:
    """A state file of `specs` in tmp_path, run with the Runner on a cloud."""

    def __init__(self, tmp_path: Path, specs: Sequence[TargetSpec]) -> None:
        self.path = tmp_path / "state.sqlite"
        store = StateStore.create(
            self.path, specs, inventory_path="fleet.csv", inventory_sha256="0" * 64
        )
        store.close()

    async def __call__(
        self,
        cloud: InMemoryCloud,
        settings: RunSettings = FAST,
        *,
        stop: asyncio.Event | None = None,
        during: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> Outcome:
        store = StateStore.open(self.path)
        store.begin_invocation({"test": True}, "fleet.csv")
        side = asyncio.create_task(during()) if during else None
        try:
            runner = Runner(store, cloud, settings)
            return await asyncio.wait_for(runner.run(stop or asyncio.Event()), RUN_LIMIT)
        finally:
            if side is not None:
                side.cancel()
            store.end_invocation("test")
            store.close()

    def targets(self) -> list[Target]:
        with StateStore.open(self.path, readonly=True) as store:
            return list(store.iter_targets())

    def states(self) -> list[TargetState]:
        return [t.state for t in self.targets()]

    def path_of(self, n: int = 0) -> list[str]:
        """The states target `n` went through, in order (notes left out)."""
        with StateStore.open(self.path, readonly=True) as store:
            target = list(store.iter_targets())[n]
            events = store.events(target.id)
        return [e.to_state for e in events if e.from_state != e.to_state]


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Run]:
    def make(*specs: TargetSpec) -> Run:
        return Run(tmp_path, specs or [spec(1)])

    return make


def assert_never_two_at_once(cloud: InMemoryCloud) -> None:
    """No reinstall reached a server while a reinstall of it may have been under way:
    the service counted none, and each one after an accepted job came after its end."""
    assert cloud.overlapping() == {}
    by_server: dict[str, list[Exchange]] = {}
    for call in cloud.reinstalls():
        by_server.setdefault(call.subject, []).append(call)
    for calls in by_server.values():
        for earlier, later in itertools.pairwise(calls):
            if earlier.job_id is not None:
                job = cloud.world.jobs.get(earlier.job_id)
                assert job is not None and later.at >= job.end, (earlier, later)


def kinds(cloud: InMemoryCloud) -> list[str]:
    return [c.kind for c in cloud.calls]


# -- paths of one run ------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(None, id="no-auth"),
        pytest.param(TokenAuth("fake-cloud-token-1f3a"), id="token"),
        pytest.param(AkSkAuth("FAKECLOUDACCESSKEY01", "fake-cloud-secret-9b2e"), id="aksk"),
    ],
)
async def test_happy_path_reads_sends_once_follows_and_verifies(
    make_run: Callable[..., Run], credentials: Credentials | None
) -> None:
    auth: dict[str, Any] = {}
    if isinstance(credentials, TokenAuth):
        auth["token"] = credentials.token
    elif isinstance(credentials, AkSkAuth):
        auth.update(ak=credentials.access_key, sk=credentials.secret_key)
    run = make_run(spec(1), spec(2), spec(3))
    cloud = InMemoryCloud(sim(**auth), credentials=credentials)

    # One server at a time: each is read singly, before its reinstall and after its job.
    outcome = await run(cloud, fast(list_reads=False))
    assert_never_two_at_once(cloud)

    assert (outcome.exit_code, outcome.stopped, outcome.aborted) == (0, False, None)
    assert run.states() == [S.SUCCEEDED] * 3
    # Running where a job query saw the job under way (a loaded machine may first ask
    # it after its end).
    assert run.path_of(0) in (
        ["submitting", "submitted", "running", "succeeded"],
        ["submitting", "submitted", "succeeded"],
    )
    sent = cloud.reinstalls()
    assert sorted(c.subject for c in sent) == [server_id(n) for n in (1, 2, 3)]
    assert all(c.acted and c.raised is None for c in sent)
    # Each server read before its reinstall (preflight) and after its job (verify).
    for n in (1, 2, 3):
        server_calls = [
            (c.kind, c.at) for c in cloud.calls if c.subject == server_id(n) and c.kind != "job"
        ]
        assert [k for k, _ in server_calls][:2] == ["server", "reinstall"]
        assert server_calls[-1][0] == "server"
    assert [t.job_id for t in run.targets()] == [
        next(c.job_id for c in sent if c.subject == server_id(n)) for n in (1, 2, 3)
    ]
    assert cloud.requests["reinstall"] == 3
    assert "list" not in kinds(cloud)


async def test_happy_path_by_the_lists_reads_the_project_in_one_call_before_sending(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(spec(1), spec(2), spec(3))
    cloud = InMemoryCloud(sim())

    outcome = await run(cloud)
    assert_never_two_at_once(cloud)

    assert (outcome.exit_code, outcome.stopped, outcome.aborted) == (0, False, None)
    assert run.states() == [S.SUCCEEDED] * 3
    # The project's first page was read before anything was sent: it holds all three.
    assert kinds(cloud)[0] == "list"
    assert cloud.requests["reinstall"] == 3
    calls = sorted(cloud.reinstalls(), key=lambda c: c.subject)
    for target, call in zip(run.targets(), calls, strict=True):
        assert target.launched_at_before is not None  # the page's row is the evidence
        job = cloud.world.jobs.get(target.job_id or "")
        assert job is not None
        # Succeeded on a reading taken after its job ended: a list's, or its own.
        assert any(
            c.kind in ("list", "server") and c.at >= job.end
            for c in cloud.calls
            if c.kind == "list" or c.subject == call.subject
        )


async def test_a_failed_job_fails_its_target_with_the_services_words(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(spec(1), spec(2))
    cloud = InMemoryCloud(sim(job_fail_rate=1.0))

    outcome = await run(cloud)
    assert_never_two_at_once(cloud)

    assert outcome.exit_code == 1
    assert run.states() == [S.FAILED, S.FAILED]
    for target in run.targets():
        assert target.error_code in ("Ecs.0101", "Ecs.0202")
        assert target.fail_reason and "system disk" in target.fail_reason
    assert [c.acted for c in cloud.reinstalls()] == [True, True]


@pytest.mark.parametrize(
    ("fault", "config", "sent", "path"),
    [
        pytest.param(
            Scripted.DROP,
            # Queued longer than a poll or two: the server shows nothing at first.
            {"queue_seconds": (0.1, 0.1)},
            [(None, OutcomeUnknown, True)],
            ["submitting", "in_doubt", "running", "succeeded"],
            id="answer-lost-after-acting-job-queued",
        ),
        pytest.param(
            Scripted.ERROR_AFTER_ACTING,
            {},
            [(500, OutcomeUnknown, True)],
            ["submitting", "in_doubt", "running", "succeeded"],
            id="5xx-after-acting",
        ),
        pytest.param(
            Scripted.ERROR,
            {},
            [(500, OutcomeUnknown, False), (200, None, True)],
            [
                "submitting",
                "in_doubt",
                "pending",
                "submitting",
                "submitted",
                "running",
                "succeeded",
            ],
            id="5xx-before-acting",
        ),
        pytest.param(
            # 501 Ecs.0603: a command is under way on the server, maybe an earlier
            # reinstall of ours. Never retried blindly: settled from the server, which
            # shows nothing for the quiet period, so it is sent again.
            Scripted.BUSY,
            {},
            [(501, CommandUnderWay, False), (200, None, True)],
            [
                "submitting",
                "in_doubt",
                "pending",
                "submitting",
                "submitted",
                "running",
                "succeeded",
            ],
            id="busy-settled-from-the-server",
        ),
    ],
)
async def test_a_reinstall_answer_gone_wrong(
    make_run: Callable[..., Run],
    fault: Scripted,
    config: dict[str, Any],
    sent: list[tuple[int | None, type[ApiError] | None, bool]],
    path: list[str],
) -> None:
    """What each reinstall got (status, error, acted on) and the states its target
    went through. An intent per send, except where the service refused before acting
    with a RetryLater: sent again within the same intent."""
    run = make_run()
    cloud = InMemoryCloud(sim(**config))
    cloud.script("reinstall", fault)

    outcome = await run(cloud)
    assert_never_two_at_once(cloud)

    assert outcome.exit_code == 0
    assert cloud.unmet() == {}
    assert [(c.status, c.raised, c.acted) for c in cloud.reinstalls()] == sent
    # Running where the job or the server was seen under way (a loaded machine may
    # first look after the job's end).
    assert run.path_of() in (path, [state for state in path if state != "running"])
    [target] = run.targets()
    assert target.attempts == path.count("submitting")
    last = cloud.reinstalls()[-1]
    # The job id is known where the service answered it, and only there.
    assert target.job_id == (last.job_id if last.raised is None else None)


async def test_an_answer_lost_after_acting_is_settled_and_followed_never_resent(
    make_run: Callable[..., Run],
) -> None:
    run = make_run()
    # Queued for most of the quiet period: the server looks untouched all that time.
    cloud = InMemoryCloud(sim(queue_seconds=(0.12, 0.12)))
    cloud.script("reinstall", Scripted.DROP)

    outcome = await run(cloud)
    assert_never_two_at_once(cloud)

    assert outcome.exit_code == 0
    [lost] = cloud.reinstalls()
    assert (lost.status, lost.raised, lost.acted) == (None, OutcomeUnknown, True)
    # Settled from the server while queued (nothing moved yet), then followed.
    reads = [c for c in cloud.calls if c.kind == "server" and c.at > lost.at]
    job = cloud.world.jobs.get(lost.job_id or "")
    assert job is not None
    assert any(c.at < job.timeline.queue_end for c in reads)
    assert [t.state for t in run.targets()] == [S.SUCCEEDED]


async def test_a_5xx_before_acting_is_sent_again_once_after_the_quiet_period(
    make_run: Callable[..., Run],
) -> None:
    run = make_run()
    cloud = InMemoryCloud(sim())
    cloud.script("reinstall", Scripted.ERROR)
    settings = fast(settle_quiet=0.2)

    outcome = await run(cloud, settings)
    assert_never_two_at_once(cloud)

    assert outcome.exit_code == 0
    first, second = cloud.reinstalls()
    assert (first.status, first.code, first.raised, first.acted) == (
        500,
        "Common.0001",
        OutcomeUnknown,
        False,
    )
    assert second.acted and second.raised is None
    # "Not accepted" only after the quiet period without any sign of activity.
    assert second.at - first.at >= settings.settle_quiet
    [target] = run.targets()
    assert (target.state, target.not_accepted, target.attempts) == (S.SUCCEEDED, 1, 2)


async def test_a_server_busy_by_someone_else_is_read_again_then_sent(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(spec(1, mode="withStopServer"))
    cloud = InMemoryCloud(sim(job_seconds=(0.15, 0.15)))
    theirs = cloud.someone_else_reinstalls(PROJECT, server_id(1))

    outcome = await run(cloud)
    assert_never_two_at_once(cloud)

    assert outcome.exit_code == 0
    [ours] = cloud.reinstalls()
    assert ours.acted and ours.at >= theirs.end
    reads_before = [c for c in cloud.calls if c.kind == "server" and c.at < ours.at]
    assert len(reads_before) >= 2  # the first found it busy; a re-check found it free
    with StateStore.open(run.path, readonly=True) as store:
        [target] = list(store.iter_targets())
        notes = [e.detail for e in store.events(target.id) if e.from_state == e.to_state]
    assert any("busy" in n and "read again" in n for n in notes)
    assert target.state is S.SUCCEEDED and target.job_id == ours.job_id


async def test_a_missing_server_fails_and_nothing_is_sent(make_run: Callable[..., Run]) -> None:
    run = make_run(spec(1), spec(2))
    # Only server 2 exists.
    cloud = InMemoryCloud(sim(fleet=((PROJECT, server_id(2)),)))

    outcome = await run(cloud)

    assert outcome.exit_code == 1
    missing, present = run.targets()
    assert (missing.state, missing.error_code, missing.attempts) == (S.FAILED, "Ecs.0114", 0)
    assert present.state is S.SUCCEEDED
    assert [c.subject for c in cloud.reinstalls()] == [server_id(2)]


async def test_a_stop_drains_what_runs_and_sends_nothing_new(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(*(spec(n) for n in range(1, 6)))
    cloud = InMemoryCloud(sim(job_seconds=(0.2, 0.2)))
    stop = asyncio.Event()

    async def stop_after_the_first_send() -> None:
        while not cloud.reinstalls():
            await asyncio.sleep(0.001)
        stop.set()

    outcome = await run(cloud, fast(max_in_flight=1), stop=stop, during=stop_after_the_first_send)
    assert_never_two_at_once(cloud)

    assert outcome.stopped and outcome.exit_code == 3
    [sent] = cloud.reinstalls()
    first, *rest = run.targets()
    # Drained: the reinstall under way was followed to its end.
    assert (first.state, first.job_id) == (S.SUCCEEDED, sent.job_id)
    assert [t.state for t in rest] == [S.PENDING] * 4
    assert all(t.attempts == 0 for t in rest)
    assert not [c for c in cloud.calls if c.subject in {t.server_id for t in rest}]


async def test_a_stop_while_the_gateway_holds_the_reinstalls_for_a_minute_ends_at_once(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(*(spec(n) for n in range(1, 4)))
    limiter = RateLimiter(10.0)
    cloud = InMemoryCloud(sim(job_seconds=(0.2, 0.2)), submit_limiter=limiter)
    stop = asyncio.Event()

    async def hold_then_stop() -> None:
        while not cloud.reinstalls():
            await asyncio.sleep(0.001)
        # As after an APIGW.0308 naming a per-minute limit: no token for a minute.
        limiter.hold(asyncio.get_running_loop().time() + 60)
        while limiter.waiting < 2:
            await asyncio.sleep(0.001)
        stop.set()

    started = asyncio.get_running_loop().time()
    settings = fast(max_in_flight=3, drain_timeout=30.0)  # longer than a stop should take
    outcome = await run(cloud, settings, stop=stop, during=hold_then_stop)

    # The stop did not wait out the hold: the first was followed to its end, the
    # two waiting for a token went back to pending, unsent.
    assert asyncio.get_running_loop().time() - started < 10
    assert outcome.stopped and outcome.exit_code == 3
    [sent] = cloud.reinstalls()
    assert sorted(t.state.value for t in run.targets()) == ["pending", "pending", "succeeded"]
    assert all(t.attempts == 0 for t in run.targets() if t.server_id != sent.subject)


async def test_the_resend_cap_fails_a_target_never_acted_on(
    make_run: Callable[..., Run],
) -> None:
    run = make_run()
    cloud = InMemoryCloud(sim())
    # Every send is refused before acting: settled "not accepted" each time.
    cloud.script("reinstall", Scripted.ERROR, Scripted.ERROR)

    outcome = await run(cloud, fast(max_resends=1, settle_quiet=0.15))

    assert outcome.exit_code == 1
    [target] = run.targets()
    assert (target.state, target.error_code) == (S.FAILED, "Orchestrator.NotAccepted")
    assert (target.attempts, target.not_accepted) == (2, 2)
    assert [c.acted for c in cloud.reinstalls()] == [False, False]
    assert cloud.unmet() == {}


async def test_refused_credentials_stop_the_run_with_exit_2_and_nothing_sent(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(spec(1), spec(2))
    cloud = InMemoryCloud(
        sim(token="the-right-token-7d1c"), credentials=TokenAuth("a-wrong-token-0e9a")
    )

    outcome = await run(cloud)

    assert (outcome.exit_code, outcome.credentials_refused) == (2, True)
    assert outcome.aborted and "a-wrong-token-0e9a" not in outcome.aborted
    assert run.states() == [S.PENDING, S.PENDING]
    assert [t.attempts for t in run.targets()] == [0, 0]
    assert cloud.reinstalls() == []
    # The project's first page is the first read: refused, it stops the run.
    assert {(c.kind, c.status, c.code) for c in cloud.calls} == {("list", 401, "Common.0013")}
