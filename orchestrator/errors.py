"""The project's exceptions, split by what the caller can do about them.

    OrchestratorError
    ├── UsageError                 bad input or options: exit 2, nothing sent
    │   └── InventoryError         carries every problem found, with file/line/field
    ├── StateError                 the state file cannot be used (schema, corrupt, locked, disk)
    │   ├── IncompleteImport       an import was killed half-way: nothing was sent from it
    │   └── JournalLost            left by a crashed run, its -wal file missing: refused
    ├── ReportError                the report could not be written
    └── ApiError                   an answer (or its absence) from the ECS API
        ├── RetryLater             refused before acting: safe to send again later
        │   ├── Throttled          429 (Common.1503, the gateway's APIGW.0308), 202 Common.0024
        │   ├── ServiceBusy        501 Ecs.0603 to a read
        │   └── NotSent            connection failed before the request was sent
        ├── CommandUnderWay        501 Ecs.0603 to a reinstall: a command is under way on the
        │                          server, maybe an earlier reinstall of ours: settle from it
        ├── Rejected               the service means it (4xx): give up on this target
        │   ├── AuthFailed         401, APIGW.0301/0307: the credentials are refused; stop
        │   │   └── AccountRefused Ecs.0003 (400 or 403): the account is frozen, or has no
        │   │                      permission or balance; stop
        │   ├── ProjectRefused     403, or no IAM token: this project's targets only
        │   └── NotFound           404 server, or Common.0011 unknown job
        ├── OutcomeUnknown         sent, but no trustworthy answer: settle from the server
        ├── BadResponse            an answer we cannot use (not JSON, missing fields)
        └── RunCannotGoOn          the fault is not one target's: stop the run
            ├── WrongEndpoint      a 404 without the service's error body: a wrong URL
            ├── Unreachable        connection or TLS failures repeat across targets
            └── ClockSkewed        this host's clock is too far from the service's

Secrets never go into any message here: the client builds messages from codes,
statuses, IDs and the service's own words, and every message is blanked against
`orchestrator.redact`'s secrets when the error is made (the service may quote a
token back, IAM's messages too), so neither a log line nor the last line on
stderr, the state file or a report can show one.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator import redact


class OrchestratorError(Exception):
    """The orchestrator failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(redact.blank(message or (self.__doc__ or "").strip()))


class UsageError(OrchestratorError):
    """Invalid input or usage."""


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One problem in an input file, precise enough to fix it."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


class InventoryError(UsageError):
    """The inventory is invalid."""

    def __init__(self, problems: list[InputProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = self.total - min(len(problems), 50)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"inventory has {self.total} problem(s):\n{shown}{tail}")


class StateError(OrchestratorError):
    """The state file cannot be used."""


class IncompleteImport(StateError):
    """The state file holds an inventory import that never finished."""


class JournalLost(StateError):
    """The state file was left by a crashed run and its write-ahead log is missing."""


class ReportError(OrchestratorError):
    """The report could not be written."""


class ScratchError(OrchestratorError):
    """A private scratch file failed (a full disk): what it held is lost."""


class ApiError(OrchestratorError):
    """The ECS API did not do what was asked."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.code = redact.blank(code) if code else code  # the service's words, too
        super().__init__(message)


class RetryLater(ApiError):
    """The service refused the request before acting on it; it may be sent again."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code)


class Throttled(RetryLater):
    """The service throttled the request."""


class ServiceBusy(RetryLater):
    """The service is busy with other commands."""


class CommandUnderWay(ApiError):
    """The service refused a reinstall because a command is under way on the server.

    Not a RetryLater: the command may be an earlier reinstall of ours, still queued,
    and a retry that lands after it ends would be a second reinstall. The target is
    settled from the server, as any doubt.
    """


class NotSent(RetryLater):
    """The connection failed before the request was sent."""


class Rejected(ApiError):
    """The service rejected the request."""


class AuthFailed(Rejected):
    """The service refused the credentials."""


class AccountRefused(AuthFailed):
    """The service refused the account: frozen, or without permission or balance."""


class ProjectRefused(Rejected):
    """The service refused this project (a policy, or no token for it); others may go on."""


class NotFound(Rejected):
    """The server or job does not exist."""


class OutcomeUnknown(ApiError):
    """The request was sent, but whether the service acted on it is unknown."""


class BadResponse(ApiError):
    """The service's answer could not be understood."""


class RunCannotGoOn(ApiError):
    """The run cannot go on: the fault is the configuration or the network, not a target."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        reached: bool = False,
    ) -> None:
        self.reached = reached  # whether the service ever answered this run
        super().__init__(message, status=status, code=code)


class WrongEndpoint(RunCannotGoOn):
    """The endpoint answered 404 without the ECS error body: the URL is wrong."""


class Unreachable(RunCannotGoOn):
    """The endpoint cannot be reached (connection or TLS failures)."""


class ClockSkewed(RunCannotGoOn):
    """This host's clock is too far from the service's to send a reinstall."""
