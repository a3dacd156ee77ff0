"""What each reinstall is sent with, as a run resolves it (part of `resolve`).

    inventory_defaults   --keyname, --userid, --stop-server, --byol, --cloud-init,
                         --encoding: for rows that give none of their own
    selection_from       --only-project, --exclude, --limit: the part imported
    user_data_from       --user-data, else the file the state's runs used, read again
    request_record       the request options recorded with the invocation, and whether
                         they changed from the state's (refused unless accepted)

The user data's content is never recorded: its path and sha256 are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.cloud.userdata import UserData, load_user_data
from orchestrator.engine.selection import Selection
from orchestrator.errors import UsageError
from orchestrator.inventory import InventoryDefaults

__all__ = ["inventory_defaults", "request_record", "selection_from", "user_data_from"]


def inventory_defaults(given: Mapping[str, Any]) -> InventoryDefaults:
    """--keyname, --userid, --stop-server, --byol, --encoding and --cloud-init: what rows
    that give none of their own are sent with."""
    return InventoryDefaults(
        given.get("keyname"),
        given.get("userid"),
        "withStopServer" if given.get("stop_server") else None,
        given.get("byol"),
        given.get("encoding"),
        cloud_init=given.get("cloud_init"),
    )


def selection_from(given: Mapping[str, Any]) -> Selection:
    """--only-project, --exclude and --limit (the exclude file read as --encoding says)."""
    return Selection(
        only_projects=tuple(given.get("only_project") or ()),
        limit=given.get("limit"),
        exclude=given.get("exclude"),
        encoding=given.get("encoding"),
    )


def user_data_from(given: Mapping[str, Any], saved: Mapping[str, Any]) -> UserData | None:
    """--user-data, else the file the state's latest invocation used, read again now;
    a resume whose file changed is refused unless --accept-changed-options."""
    recorded = saved.get("user_data") if isinstance(saved.get("user_data"), dict) else None
    path: Path | None = given.get("user_data")
    if path is None and recorded is None:
        return None
    if path is not None:
        user_data = load_user_data(path)
    else:
        assert recorded is not None
        try:
            user_data = load_user_data(Path(str(recorded.get("path"))))
        except UsageError as exc:
            raise UsageError(
                f"{exc}; the state file's runs used this user data file: give it again"
                " with --user-data FILE"
            ) from None
    if (
        recorded is not None
        and recorded.get("sha256") != user_data.sha256
        and not given.get("accept_changed_options")
    ):
        raise UsageError(
            f"user data {user_data.path} differs from the one the state file's runs used"
            f" ({recorded.get('path')}, sha256 {str(recorded.get('sha256'))[:12]}…, now"
            f" {user_data.sha256[:12]}…). Add --accept-changed-options to send the new one"
            " to the targets not sent yet (the others keep what they were sent with)"
        )
    return user_data


def request_record(
    given: Mapping[str, Any],
    saved: Mapping[str, Any],
    inventory: Path | None,
    defaults: InventoryDefaults,
    user_data: UserData | None,
) -> tuple[Any, bool]:
    """The request options to record, and whether they changed from the saved ones (then
    accepted with --accept-changed-options: the targets not sent yet get them)."""
    if inventory is None:
        # resume, retry: the saved ones stand; only the user data may be read anew.
        recorded = saved.get("request_options")
        if isinstance(recorded, dict) and user_data is not None:
            recorded = {**recorded, "user_data_sha256": user_data.sha256}
        return recorded, False
    now = {
        "keyname": defaults.keyname,
        "userid": defaults.userid,
        "mode": defaults.mode,
        "byol": defaults.byol,
        "cloud_init": defaults.cloud_init,
        "user_data_sha256": user_data.sha256 if user_data else None,
    }
    before = saved.get("request_options")
    changed = (
        [
            f"{name}: was {before.get(name)!r}, now {value!r}"
            for name, value in now.items()
            if before.get(name) != value
        ]
        if isinstance(before, dict)
        else []
    )
    if changed and not given.get("accept_changed_options"):
        raise UsageError(
            "request options differ from the state file's ("
            + "; ".join(changed)
            + "). Add --accept-changed-options to apply the new ones to the targets"
            " nothing was sent for yet (the others keep what they were sent with)"
        )
    return now, bool(changed)
