"""A campaign's state opened for an invocation: an existing state file (or PostgreSQL
campaign) checked against what is given now, or a new one made from the inventory,
which is validated and imported once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from orchestrator.engine.invocation import Invocation
from orchestrator.engine.selection import SelectionFilter, check_same_selection
from orchestrator.errors import IncompleteImport, InputProblem, InventoryError, UsageError
from orchestrator.inventory import InventoryReader
from orchestrator.model import TargetSpec
from orchestrator.nofollow import PRIVATE_FILE, folder_mode, make_dir, probe_writable
from orchestrator.report.summary import check_group_column
from orchestrator.store import SqliteLocation, StateLocation
from orchestrator.store.base import StateExists
from orchestrator.store.files import file_sha256
from orchestrator.store.sqlite import StateStore

log = logging.getLogger("orchestrator.campaign")


NO_CLOUD_INIT = (
    "--user-data is sent only with the Cloud-Init API, and no target uses it: add"
    " --cloud-init, or a cloud_init column"
)


def check_user_data_has_targets(store: StateStore, inv: Invocation) -> None:
    """User data given for a state file without a Cloud-Init target is a mistake:
    the servers would be reinstalled without it."""
    if inv.user_data is not None and not store.has_cloud_init_targets():
        raise UsageError(NO_CLOUD_INIT)


def check_report_dir(report_dir: Path, mode: int = PRIVATE_FILE) -> None:
    """Refuse to start a run whose report could not be written (before anything is sent).

    Made, when missing, for files of `mode` (owner-only by default). The probe is a
    new file of a name nobody can guess, created without following a link: the
    folder may be shared, and someone else's link under a fixed name would be followed.
    """
    try:
        make_dir(report_dir, folder_mode(mode))
        probe_writable(report_dir)
    except OSError as exc:
        raise UsageError(
            f"report directory {report_dir} is not writable: {exc.strerror}; "
            "pick another with --report-dir"
        ) from exc


def open_state(inv: Invocation) -> StateStore:
    """Open the state for a run, creating it from the inventory the first time."""
    location = inv.state
    if location.exists():
        store = _open_existing(inv, location)
        if store is not None:
            return store
    if inv.inventory is None:
        raise UsageError(f"{location.describe} does not exist; start with `run INVENTORY`")
    try:
        return _create(inv, location)
    except StateExists:
        if not isinstance(location, SqliteLocation):
            # Another runner (another shard) created the campaign meanwhile: join it.
            store = _open_existing(inv, location)
            if store is not None:
                return store
        raise


def _open_existing(inv: Invocation, location: StateLocation) -> StateStore | None:
    """Open the existing state with the checks a run needs; None when it was an import
    that never finished (then discarded, to be created again)."""
    try:
        store = location.open(shard=inv.settings.shard, journal_lost=inv.journal_lost)
    except IncompleteImport:
        if inv.inventory is None:
            raise
        # An import killed half-way committed no target; start it again (under
        # the file's lock, so a file still being created is never taken for it).
        log.warning("%s: restarting an inventory import that never finished", location.label)
        location.discard_incomplete()
        return None
    try:
        if inv.inventory is not None:
            _check_same_inventory(store, inv.inventory)
            check_same_selection(store.run_info().selection, inv.selection)
        _check_regions(store, inv)
        if inv.apply_request_options and inv.inventory is not None:
            _apply_request_options(store, inv)
        check_user_data_has_targets(store, inv)
    except BaseException:
        store.close()
        raise
    return store


def _create(inv: Invocation, location: StateLocation) -> StateStore:
    assert inv.inventory is not None
    selected = SelectionFilter.build(inv.selection)  # reads --exclude: before anything
    reader = InventoryReader(inv.inventory, inv.defaults)
    regions = RegionCheck(str(inv.inventory), needed=_needs_region(inv))

    cloud_init = 0

    def counted(specs: Iterable[TargetSpec]) -> Iterator[TargetSpec]:
        nonlocal cloud_init
        for spec in specs:
            cloud_init += spec.cloud_init
            yield spec

    def validate() -> None:
        _validated(reader, regions)
        # The inventory's columns are known only now; the state file is not made yet.
        check_group_column(reader.columns, inv.group_by)
        if inv.selection.active and selected.selected == 0:
            raise UsageError(
                f"{reader.path}: --only-project/--exclude/--limit leave no server of "
                f"the {reader.rows} in the inventory"
            )
        if inv.user_data is not None and cloud_init == 0:
            raise UsageError(NO_CLOUD_INIT)

    store = location.create(
        counted(selected.filtered(regions.checked(reader))),
        inventory_path=str(inv.inventory),
        inventory_sha256=file_sha256(inv.inventory),
        extra_columns=lambda: reader.columns,
        validate=validate,
        shard=inv.settings.shard,
    )
    if inv.selection.active:
        record = selected.record()
        store.set_meta("selection", json.dumps(record, sort_keys=True))
        log.info("selection: %d selected, %d left out", record["selected"], record["left_out"])
    return store


def _needs_region(inv: Invocation) -> bool:
    return inv.simulate is None and inv.endpoint is None and inv.endpoint_template is not None


def _validated(reader: InventoryReader, regions: RegionCheck) -> None:
    problems = reader.problems + regions.problems
    if problems:
        raise InventoryError(problems, total=reader.problem_count + len(regions.problems))
    if reader.rows == 0:
        raise UsageError(f"{reader.path}: the inventory lists no servers")


def _check_regions(store: StateStore, inv: Invocation) -> None:
    """A state file made before regions were checked: refuse what cannot be addressed."""
    if not _needs_region(inv):
        return
    missing, examples = store.count_without_region()
    if missing:
        raise InventoryError(
            [
                InputProblem(
                    store.run_info().inventory_path or store.location,
                    t.spec.line,
                    "region",
                    f"missing; --endpoint-template needs a region ({t.server_id})",
                )
                for t in examples
            ],
            total=missing,
        )


def _apply_request_options(store: StateStore, inv: Invocation) -> None:
    assert inv.inventory is not None
    changed = store.update_pending_specs(
        InventoryReader(inv.inventory, inv.defaults),
        "request options changed (--accept-changed-options): "
        f"keyname={inv.defaults.keyname!r} userid={inv.defaults.userid!r} "
        f"mode={inv.defaults.mode!r} byol={inv.defaults.byol!r} "
        f"cloud_init={inv.defaults.cloud_init!r}",
    )
    log.warning("new request options applied to %d target(s) not sent yet", changed)


def _check_same_inventory(store: StateStore, inventory: Path) -> None:
    try:
        actual = file_sha256(inventory)
    except OSError as exc:
        raise UsageError(f"cannot read inventory {inventory}: {exc.strerror}") from exc
    state_path = store.location
    recorded = store.inventory_sha256
    if actual != recorded:
        raise UsageError(
            f"inventory {inventory} differs from the one state file {state_path} was made from "
            f"(sha256 {actual[:12]}… vs {recorded[:12]}…). Finish the old run with "
            f"`orchestrator resume --state {state_path}`, or start this inventory with its own "
            "state file (--state NEW_PATH) and --skip-reinstalled-since TIME, so that servers "
            "reinstalled since TIME (by the old run or anyone) are skipped, not wiped again."
        )


class RegionCheck:
    """With --endpoint-template, every target needs a region: collected while the
    inventory is imported, so that nothing is created or sent when one lacks it."""

    def __init__(self, path: str, *, needed: bool) -> None:
        self.path = path
        self.needed = needed
        self.problems: list[InputProblem] = []

    def checked(self, specs: Iterable[TargetSpec]) -> Iterator[TargetSpec]:
        for spec in specs:
            if self.needed and not spec.region:
                self.problems.append(
                    InputProblem(
                        self.path,
                        spec.line,
                        "region",
                        "missing; --endpoint-template needs a region for every server",
                    )
                )
            yield spec
