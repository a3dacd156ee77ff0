"""`orchestrator status`: what a state file says about its run, during the run and after.

read_status(path) -> StatusSnapshot     read-only SQLite (mode=ro, no lock, short busy timeout)
status_to_dict(snapshot) -> dict        the `status --json` document (schema in the README)
render_text(snapshot) -> str            the human version
exit_code_for(counts) -> int            0 all succeeded, 1 finished with failures, 3 not finished
"""

from orchestrator.status.read import read_status
from orchestrator.status.view import (
    STATUS_SCHEMA,
    DeferredTarget,
    FailureGroup,
    InvocationView,
    StatusSnapshot,
    TargetRef,
    exit_code_for,
    render_text,
    status_to_dict,
)

__all__ = [
    "STATUS_SCHEMA",
    "DeferredTarget",
    "FailureGroup",
    "InvocationView",
    "StatusSnapshot",
    "TargetRef",
    "exit_code_for",
    "read_status",
    "render_text",
    "status_to_dict",
]
