"""The resolver: given now > saved in the state > default, every value checked, one frozen result.

`resolve` is a function of what was given, what the state saved and the environment;
these tests give it plain dicts (as click and the runs table hand them over), with an
environment of their own, and a state location that does not exist: a resolve, refused
or not, creates nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.resolve import resolve, saved_options
from orchestrator.engine.campaign import Invocation
from orchestrator.errors import UsageError
from orchestrator.inventory import InventoryDefaults
from orchestrator.model import TargetSpec
from orchestrator.store import SqliteLocation

PROJECT = "0123456789abcdef0123456789abcdef"
TOKEN_ENV = {"OS_AUTH_TOKEN": "not-a-real-token", "OS_REGION_NAME": "eu-de"}
SIM = {"simulate": True}


@pytest.fixture
def location(tmp_path: Path) -> SqliteLocation:
    return SqliteLocation(tmp_path / "fleet.state.sqlite")


def resolved(
    location: SqliteLocation,
    given: Mapping[str, Any],
    saved: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Invocation:
    inv = resolve(location, given, saved or {}, environ=kwargs.pop("environ", {}), **kwargs)
    assert not location.path.exists()  # resolving creates nothing
    return inv


# -- precedence ----------------------------------------------------------------------------

Read = Callable[[Invocation], Any]

PRECEDENCE: list[tuple[str, dict[str, Any], dict[str, Any], Any, Any, Any, Read]] = [
    # (option, given now, saved, value given, value saved, default, where it is read)
    ("rate", {"rate": 5.0}, {"rate": 7.0}, 5.0, 7.0, 10.0, lambda i: i.settings.rate),
    (
        "first_poll (--simulate)",
        {"first_poll": 3.0},
        {"first_poll": 4.0},
        3.0,
        4.0,
        0.5,  # a simulated job takes seconds
        lambda i: i.settings.first_poll,
    ),
    (
        "max_in_flight",
        {"max_in_flight": 20},
        {"max_in_flight": 30},
        20,
        30,
        200,
        lambda i: i.settings.max_in_flight,
    ),
    ("verify", {"verify": True}, {"verify": False}, True, False, True, lambda i: i.settings.verify),
    (
        "busy_rechecks",
        {"busy_rechecks": 0},
        {"busy_rechecks": 5},
        0,
        5,
        3,
        lambda i: i.settings.busy_rechecks,
    ),
    (
        "report_dir",
        {"report_dir": Path("now")},
        {"report_dir": "/saved/reports"},
        Path("now").absolute(),  # relative to where the command runs, made absolute
        Path("/saved/reports"),
        Path("reports").absolute(),
        lambda i: i.report_dir,
    ),
    (
        "group_by",
        {"group_by": "owner"},
        {"group_by": "region"},
        "owner",
        "region",
        None,
        lambda i: i.group_by,
    ),
    (
        "report_mode",
        {"report_mode": 0o640},
        {"report_mode": "0660"},
        0o640,
        0o660,
        0o600,
        lambda i: i.report_mode,
    ),
    (
        "window (rollout)",
        {"window": "01:00-02:00"},
        {"rollout": {"window": "03:00-04:00"}},
        "01:00-02:00",
        "03:00-04:00",
        None,
        lambda i: i.rollout.window,
    ),
    (
        "max_failures (rollout)",
        {"max_failures": "5%"},
        {"rollout": {"max_failures": "3"}},
        "5%",
        "3",
        None,
        lambda i: i.rollout.max_failures,
    ),
]


@pytest.mark.parametrize(
    ("given", "saved", "now", "before", "default", "read"),
    [case[1:] for case in PRECEDENCE],
    ids=[case[0] for case in PRECEDENCE],
)
def test_given_now_beats_saved_beats_default(
    location: SqliteLocation,
    given: dict[str, Any],
    saved: dict[str, Any],
    now: Any,
    before: Any,
    default: Any,
    read: Read,
) -> None:
    assert read(resolved(location, {**SIM, **given}, {**SIM, **saved})) == now
    assert read(resolved(location, SIM, {**SIM, **saved})) == before
    assert read(resolved(location, SIM, SIM)) == default
    assert read(resolved(location, SIM)) == default


def test_a_real_cloud_takes_the_longer_waits_and_the_saved_endpoint_and_region(
    location: SqliteLocation,
) -> None:
    saved = {"endpoint": "https://ecs.saved.example.com", "region": "eu-nl", "first_poll": 9.0}
    fresh = resolved(location, {"endpoint": "https://ecs.now.example.com"}, environ=TOKEN_ENV)
    assert fresh.settings.first_poll == 5.0 and fresh.settings.settle_quiet == 600.0
    assert fresh.endpoint == "https://ecs.now.example.com"
    assert fresh.endpoints is not None and fresh.endpoints.region == "eu-de"  # OS_REGION_NAME

    resumed = resolved(location, {}, saved, environ=TOKEN_ENV)
    assert resumed.endpoint == "https://ecs.saved.example.com"
    assert resumed.endpoints is not None and resumed.endpoints.region == "eu-nl"
    assert resumed.settings.first_poll == 9.0

    moved = {"endpoint": "https://ecs.now.example.com", "region": "eu-ch2"}
    with pytest.raises(UsageError, match="--accept-changed-endpoint"):
        resolved(location, moved, saved, environ=TOKEN_ENV)
    accepted = resolved(
        location, {**moved, "accept_changed_endpoint": True}, saved, environ=TOKEN_ENV
    )
    assert accepted.endpoint == "https://ecs.now.example.com"
    assert accepted.endpoints is not None and accepted.endpoints.region == "eu-ch2"


def test_what_is_never_saved_is_never_taken_from_the_state(location: SqliteLocation) -> None:
    # The latest invocation may have been another shard's, and an acknowledgement or a
    # journal declared lost is for one invocation only.
    saved = {**SIM, "shard": "1/2", "ack_failures": True, "journal_lost": True}
    inv = resolved(location, SIM, saved)
    assert inv.settings.shard is None
    assert not inv.ack_failures and not inv.journal_lost
    assert inv.simulate is not None and inv.simulate.job_seconds == (1.0, 3.0)


# -- every saved value is checked, and refused naming its option ----------------------------


@pytest.mark.parametrize(
    ("saved", "named"),
    [
        ({"rate": "fast"}, "--rate"),
        ({"rate": True}, "--rate"),
        ({"poll_rate": 0}, "--poll-rate"),
        ({"first_poll": -1}, "--first-poll"),
        ({"poll_cap": math.inf}, "--poll-cap"),
        ({"drain_timeout": math.nan}, "--drain-timeout"),
        ({"settle_quiet": None}, "--settle-quiet"),
        ({"busy_recheck_delay": "60"}, "--busy-recheck-delay"),
        ({"busy_rechecks": 99}, "--busy-rechecks"),
        ({"busy_rechecks": "3"}, "--busy-rechecks"),
        ({"skip_reinstalled_since": "yesterday"}, "--skip-reinstalled-since"),
        ({"skip_reinstalled_since": 1700000000}, "--skip-reinstalled-since"),
        ({"skip_reinstalled_since": "2026-01-01T00:00:00"}, "--skip-reinstalled-since"),
        ({"rollout": {"max_failures": "lots"}}, "--max-failures"),
        ({"rollout": {"window": "25:00-26:00"}}, "--window"),
        ({"rollout": {"pause_between_waves": -5}}, "--pause-between-waves"),
        ({"rollout": {"keep_going": True}}, "--keep-going"),
    ],
    ids=repr,
)
def test_a_saved_value_that_fails_its_check_is_refused_naming_the_option(
    location: SqliteLocation, saved: dict[str, Any], named: str
) -> None:
    with pytest.raises(UsageError, match=f"^{named}"):
        resolved(location, SIM, {**SIM, **saved})
    # Given again on the command line, the saved value no longer matters.
    option = next(iter(saved))
    if option != "rollout":
        good: dict[str, Any] = {
            "skip_reinstalled_since": "2026-01-01T00:00:00Z",
            "busy_rechecks": 2,
        }
        resolved(location, {**SIM, option: good.get(option, 1.0)}, {**SIM, **saved})


def test_a_saved_region_that_cannot_go_into_a_hostname_is_refused(
    location: SqliteLocation,
) -> None:
    saved = {"endpoint_template": "https://ecs.{region}.example.com", "region": "eu/../x"}
    with pytest.raises(UsageError, match=r"^the state file's region"):
        resolved(location, {}, saved, environ=TOKEN_ENV)


def test_a_saved_report_mode_never_widens_access(location: SqliteLocation) -> None:
    assert resolved(location, SIM, {**SIM, "report_mode": "0777x"}).report_mode == 0o600


# -- one frozen object, and what it records --------------------------------------------------


def test_the_result_is_frozen(location: SqliteLocation) -> None:
    inv = resolved(location, SIM)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.report_dir = Path("elsewhere")  # type: ignore[misc]


RECORDED_KEYS = [
    "report_dir", "endpoint", "endpoint_template", "simulate", "rate", "poll_rate",
    "max_in_flight", "job_timeout", "first_poll", "poll_cap", "drain_timeout",
    "settle_quiet", "no_preflight", "max_clock_skew", "verify", "verify_within",
    "audit_trail", "audit_trail_delay", "busy_rechecks", "busy_recheck_delay", "list_reads",
    "skip_reinstalled_since",
    "request_options", "encoding", "auth", "os_cloud", "credentials", "cloud", "region",
    "ca_bundle", "ca_bundle_source", "group_by", "report_mode", "state", "shard", "user_data",
    "rollout",
]  # fmt: skip


def test_the_recorded_options_keep_their_keys_and_values(
    location: SqliteLocation, tmp_path: Path
) -> None:
    inv = resolved(
        location,
        {**SIM, "rate": 3.0, "report_dir": tmp_path / "out", "window": "02:00-05:00"},
        inventory=tmp_path / "fleet.csv",
        defaults=InventoryDefaults(keyname="kp", encoding="cp1252"),
    )
    assert list(inv.options) == RECORDED_KEYS
    assert {k: v for k, v in inv.options.items() if k != "rollout"} == {
        "report_dir": str(tmp_path / "out"),
        "endpoint": None,
        "endpoint_template": None,
        "simulate": True,
        "rate": 3.0,
        "poll_rate": 50.0,
        "max_in_flight": 200,
        "job_timeout": 3600.0,
        "first_poll": 0.5,
        "poll_cap": 2.0,
        "drain_timeout": 60.0,
        "settle_quiet": 10.0,
        "no_preflight": False,
        "max_clock_skew": 60.0,
        "verify": True,
        "verify_within": 10.0,
        "audit_trail": None,
        "audit_trail_delay": 5.0,
        "busy_rechecks": 3,
        "busy_recheck_delay": 2.0,
        "list_reads": True,
        "skip_reinstalled_since": None,
        "request_options": {
            "keyname": "kp",
            "userid": None,
            "mode": None,
            "byol": None,
            "cloud_init": None,
            "user_data_sha256": None,
        },
        "encoding": "cp1252",
        "auth": "simulator",
        "os_cloud": None,
        "credentials": None,
        "cloud": None,
        "region": None,
        "ca_bundle": None,
        "ca_bundle_source": "system",
        "group_by": None,
        "report_mode": "0600",
        "state": str(location.path),
        "shard": None,
        "user_data": None,
    }
    assert inv.options["rollout"]["window"] == "02:00-05:00"


def test_a_resume_with_nothing_given_resolves_what_the_state_recorded(
    location: SqliteLocation, tmp_path: Path
) -> None:
    """Round trip through a real state file: recorded, read back as saved, resolved again."""
    given = {
        **SIM,
        "rate": 4.0,
        "poll_cap": 7.0,
        "no_preflight": True,
        "verify": False,
        "group_by": "owner",
        "report_dir": tmp_path / "out",
        "window": "02:00-05:00",
        "max_failures": "10%",
    }
    first = resolved(location, given, inventory=tmp_path / "fleet.csv")
    spec = TargetSpec(PROJECT, "00000000-0000-4000-8000-000000000001", "kp", "user", 2)
    with location.create([spec], inventory_path="fleet.csv", inventory_sha256="0" * 64) as store:
        store.begin_invocation(first.options, "fleet.csv")
        store.end_invocation("stopped")

    saved = saved_options(location)
    assert saved == json.loads(json.dumps(first.options))
    again = resolve(location, {}, saved, environ={})
    assert again.settings == first.settings
    assert again.rollout == first.rollout
    assert (again.report_dir, again.group_by, again.report_mode) == (
        first.report_dir,
        first.group_by,
        first.report_mode,
    )
    assert again.options == first.options
