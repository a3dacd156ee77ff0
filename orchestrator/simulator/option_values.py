"""The values `orchestrator simulate` takes, read and checked (click callbacks): spans
of seconds, key pairs, a fleet file, the gateway's limits, the reinstall APIs, users."""

from __future__ import annotations

import math
from pathlib import Path

import click

from orchestrator.cli.types import SHARE
from orchestrator.simulator.config import API_KINDS, ApiLimit
from orchestrator.simulator.fleetfile import load_fleet

RATE = SHARE


def job_seconds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    low_text, sep, high_text = value.partition(":")
    try:
        low = float(low_text)
        high = float(high_text) if sep else low
    except ValueError:
        raise click.BadParameter(f"expected MIN or MIN:MAX seconds, got {value!r}") from None
    if not (0.0 <= low <= high) or not math.isfinite(high):
        raise click.BadParameter(f"need 0 <= MIN <= MAX, both finite, got {value!r}")
    return low, high


def keypairs(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(name.strip() for name in value.split(",") if name.strip())


def fleet(
    ctx: click.Context, param: click.Parameter, value: Path | None
) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    try:
        return load_fleet(value)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None


def api_limits(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[str | None, ApiLimit], ...]:
    """Each `[KIND=]PER_SECOND[/PER_MINUTE]` (or `[KIND=]/PER_MINUTE`) as (kind, limit)."""
    limits = []
    for item in value:
        kind_text, sep, numbers = item.rpartition("=")
        kind = kind_text.strip() if sep else None
        if kind is not None and kind not in API_KINDS:
            raise click.BadParameter(
                f"{item!r}: unknown API {kind!r}; one of {', '.join(API_KINDS)}"
            )
        second_text, slash, minute_text = numbers.partition("/")
        try:
            per_second = int(second_text) if second_text.strip() else None
            per_minute = int(minute_text) if slash else None
            limit = ApiLimit(per_second, per_minute)
        except ValueError:
            raise click.BadParameter(
                f"expected [KIND=]PER_SECOND[/PER_MINUTE], whole numbers >= 1, got {item!r}"
            ) from None
        limits.append((kind, limit))
    return tuple(limits)


def reinstall_apis(value: str) -> tuple[str, ...]:
    apis = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not apis or not set(apis) <= {"v1", "v2"}:
        raise click.BadParameter(f"expected v1, v2 or v1,v2, got {value!r}")
    return apis


def users(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[str, str, str], ...]:
    users = []
    for item in value:
        name, sep1, rest = item.partition(":")
        password, sep2, domain = rest.rpartition(":")
        if not (sep1 and sep2 and name and password and domain):
            # Never echo the value: it holds a password.
            raise click.BadParameter("expected NAME:PASSWORD:DOMAIN")
        users.append((name, password, domain))
    return tuple(users)
