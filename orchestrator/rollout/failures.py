"""Which answers count as failures for the rollout's budgets, and what each one likely means.

One table, so that the budgets, the breaker and the manual (docs/how-to/rollout.md)
agree. A code counts when it says something about the server (or about this run's
settings for it):
those are the answers an operator must look at before more servers are wiped.
Flow control says only "slower" and never counts; the runner retries it and
leaves the target pending when retries run out.

    code                         counts  why
    ---------------------------  ------  ------------------------------------------
    Common.1503 (429)            never   API flow control: slow down, the server is fine
    Common.0024 (202)            never   flow limit exceeded: slow down
    Ecs.0603 (501)               never   other commands running: try again later
    Ecs.0605                     yes     the server is locked
    Ecs.0105                     yes     no system disk attached
    Ecs.0100                     yes     the server's status forbids a reinstall (running?)
    Ecs.0314                     yes     the key pair does not exist
    Ecs.0114 / Ecs.0614          yes     the server does not exist
    Common.0018                  yes     the project ID does not match the token
    Orchestrator.ServerError     yes     the server ended in ERROR after a reinstall
    Orchestrator.Unverified      yes     accepted or not, cannot tell: reported, not resent
    Orchestrator.NotVerified     yes     finished, but the result could not be checked
    Orchestrator.JobTimeout      yes     the job did not end in time: something is wrong
    Orchestrator.PendingPayment  yes     the job waits for a yearly/monthly order's payment
    job FAIL (any other code)    yes     the reinstall itself failed
    no code / unknown code       yes     a failure we do not understand is a failure

Where the reference is silent, the harder assumption is taken: an unknown code
counts. The hints are written for the breaker's message, which fires after a
run of the same code in one project, so they speak of "every server". A canary
is one server or a few: `canary_hint` names them, says what the code means for
one server, and what to do about that server (`CANARY_ACTIONS`): a canary that
does not exist says nothing about the project ID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "CANARY_ACTIONS",
    "FAILURE_TABLE",
    "FLOW_CONTROL_CODES",
    "HINTS",
    "FailureRule",
    "canary_hint",
    "counts_as_failure",
    "hint",
    "rule",
]


@dataclass(frozen=True, slots=True)
class FailureRule:
    counts: bool  # does a target ending with this code use up the failure budget?
    why: str  # one line for the manual and the report


FLOW_CONTROL_CODES: frozenset[str] = frozenset({"Common.1503", "Common.0024", "Ecs.0603"})

FAILURE_TABLE: Mapping[str, FailureRule] = MappingProxyType(
    {
        "Common.1503": FailureRule(False, "API flow control (429): slow down, the server is fine"),
        "Common.0024": FailureRule(False, "flow limit exceeded (202): slow down"),
        "Ecs.0603": FailureRule(False, "other commands are running (501): try again later"),
        "Ecs.0605": FailureRule(True, "the server is locked"),
        "Ecs.0105": FailureRule(True, "the server has no system disk"),
        "Ecs.0100": FailureRule(True, "the server's status does not allow a reinstall"),
        "Ecs.0314": FailureRule(True, "the key pair does not exist"),
        "Ecs.0114": FailureRule(True, "the server does not exist"),
        "Ecs.0614": FailureRule(True, "the server does not exist"),
        "Common.0018": FailureRule(True, "the project ID in the URL differs from the token's"),
        "Orchestrator.ServerError": FailureRule(True, "the server ended in ERROR"),
        "Orchestrator.Unverified": FailureRule(
            True, "whether the reinstall was accepted cannot be told; not resent"
        ),
        "Orchestrator.NotVerified": FailureRule(
            True, "the reinstall ended but its result could not be checked"
        ),
        "Orchestrator.JobTimeout": FailureRule(True, "the job did not end in time"),
        "Orchestrator.PendingPayment": FailureRule(
            True, "the job waits for the payment of a yearly/monthly server's order"
        ),
    }
)

# A code not in the table (a job's own error code, or none at all) counts.
_UNKNOWN = FailureRule(True, "a failure not in the table counts")

HINTS: Mapping[str, str] = MappingProxyType(
    {
        "Ecs.0114": "every server answers 'does not exist' (Ecs.0114): is the project ID right?",
        "Ecs.0614": "every server answers 'does not exist' (Ecs.0614): is the project ID right?",
        "Common.0018": "the project ID does not match the token (Common.0018): "
        "check the project ID and the credentials' project",
        "Ecs.0100": "the servers are not in a status that allows a reinstall (Ecs.0100): "
        "they are probably running; add --stop-server",
        "Ecs.0314": "the key pair does not exist in that project (Ecs.0314): "
        "check the key pair name for this project",
        "Ecs.0605": "the servers are locked (Ecs.0605): unlock them first",
        "Ecs.0105": "the servers have no system disk attached (Ecs.0105)",
        "Orchestrator.ServerError": "reinstalls end with the server in ERROR: "
        "check the image and the flavor",
        "Orchestrator.JobTimeout": "jobs do not end in time: the service may be degraded, "
        "or --job-timeout is too short",
        "Orchestrator.Unverified": "outcomes cannot be verified: check connectivity to the API",
        "Orchestrator.PendingPayment": "jobs wait for payment (PENDING_PAYMENT): these are"
        " yearly/monthly servers whose orders must be paid first",
    }
)


_NOT_THERE = (
    "it is not in this project, or was deleted: check its server ID and project in the inventory"
)
# What to do about one server that failed with a code (a canary): never the breaker's
# guesses about a whole project.
CANARY_ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        "Ecs.0114": _NOT_THERE,
        "Ecs.0614": _NOT_THERE,
        "Ecs.0100": "it is probably running: add --stop-server, or stop it first",
        "Ecs.0605": "unlock it first",
        "Ecs.0105": "attach its system disk first",
        "Ecs.0314": "check the key pair name for its project",
        "Common.0018": "check its project ID and the credentials' project",
    }
)
CANARIES_NAMED = 3  # failed canaries named per code; the rest are counted


def canary_hint(failures: Sequence[tuple[str, str, str | None]]) -> str | None:
    """What the failed canaries `(project_id, server_id, code)` say, by code: which
    servers, what the code means for one server, and what to do about it."""
    by_code: dict[str | None, list[str]] = {}
    for project_id, server_id, code in failures:
        by_code.setdefault(code, []).append(f"{project_id}/{server_id}")
    parts = []
    for code, servers in by_code.items():
        named = ", ".join(servers[:CANARIES_NAMED])
        if len(servers) > CANARIES_NAMED:
            named += f" and {len(servers) - CANARIES_NAMED} more"
        what = rule(code).why if code in FAILURE_TABLE else "the reinstall failed"
        action = CANARY_ACTIONS.get(code or "") or hint(code)
        which = "canary server" if len(servers) == 1 else "canary servers"
        text = f"{which} {named}: {what} ({code or 'no code'})"
        parts.append(f"{text}: {action}" if action else text)
    return "; ".join(parts) or None


def rule(code: str | None) -> FailureRule:
    """The table's row for `code`; unknown and missing codes count."""
    if code is None:
        return _UNKNOWN
    return FAILURE_TABLE.get(code, _UNKNOWN)


def counts_as_failure(code: str | None) -> bool:
    """Whether a target that ended failed with `code` uses up the failure budget."""
    return rule(code).counts


def hint(code: str | None) -> str | None:
    """The likely cause of a run of `code` failures, or None when the code says nothing."""
    if code is None:
        return None
    return HINTS.get(code)
