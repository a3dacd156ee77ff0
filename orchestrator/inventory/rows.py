"""RowChecker: the one interface every inventory format hands its rows and problems to.

Owns what a row means whatever the format: the command line's values
(`InventoryDefaults`) and a file's own defaults with their precedence (row >
file defaults > command line), one row's target with its required fields,
duplicate servers, the row limit, and the list of problems with file, line and
field. The formats (`csv_format`, `json_format`) depend on this module and on
`rules`; nothing here knows about them, so the dependency goes one way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from orchestrator.errors import InputProblem, InventoryError
from orchestrator.inventory.rules import (
    CHECK_LIST,
    CHECKS,
    FLAGS,
    KNOWN,
    REQUIRED_INDEXES,
    UNUSABLE,
    Bad,
    field_name,
)
from orchestrator.model import TargetSpec

MAX_STORED_PROBLEMS: Final = 1000  # all are counted; storing more helps nobody read them


@dataclass(frozen=True, slots=True)
class InventoryDefaults:
    """What the command line says about the inventory: field values used where
    neither row nor file gives one, and the text encoding used where the file
    does not say (it has no byte order mark)."""

    keyname: str | None = None  # --keyname
    userid: str | None = None  # --userid
    mode: str | None = None  # --stop-server: None or "withStopServer"
    byol: bool | None = None  # --byol
    encoding: str | None = None  # --encoding; None: UTF-8, or what a BOM says
    cloud_init: bool | None = None  # --cloud-init: the Cloud-Init API (v2) for every row


NO_DEFAULTS: Final = InventoryDefaults()


class _SeenServers:
    """Every server_id met so far, with where and under which project.

    Up to max_rows entries live here for the whole read, so an entry is kept
    small: the UUID as an int, and line and project packed into one int.
    """

    def __init__(self) -> None:
        self._where: dict[int, int] = {}
        self._project_index: dict[str, int] = {}
        self._projects: list[str] = []

    def add(self, project_id: str, server_id: str, line: int) -> tuple[int, str] | None:
        """Remember the server; if it was met before, return (line, project_id) of then."""
        key = int(server_id.replace("-", ""), 16)
        earlier = self._where.get(key)
        if earlier is not None:
            return earlier >> 32, self._projects[earlier & 0xFFFFFFFF]
        index = self._project_index.get(project_id)
        if index is None:
            index = self._project_index[project_id] = len(self._projects)
            self._projects.append(project_id)
        self._where[key] = line << 32 | index
        return None


class RowChecker:
    """Turns rows into targets and records every problem of one inventory file.

    The reader calls `use_cli_defaults` first. A format then calls, in this
    order: `file_default` for each default the file
    gives (JSON), `begin_rows` once, then `count_row` and `target` per row.
    `problem` records a problem and reading goes on; `fail` records one and
    stops the read; `stop` stops it with what was recorded. `columns` is set by
    the format: the extra columns (or keys) kept for the report.
    """

    def __init__(self, file_name: str, *, max_rows: int) -> None:
        self.file_name = file_name
        self.max_rows = max_rows
        self.problems: list[InputProblem] = []
        self.problem_count = 0
        self.rows = 0
        self.columns: tuple[str, ...] = ()
        self._seen = _SeenServers()
        self._defaults: dict[str, Any] = {}  # command line, then file defaults, by field
        self._default_row: list[Any] = [None] * len(KNOWN)  # the same in KNOWN order

    # -- problems ----------------------------------------------------------------

    def problem(self, line: int | None, field: str | None, message: str) -> None:
        """Record a problem; reading goes on."""
        self.problem_count += 1
        if len(self.problems) < MAX_STORED_PROBLEMS:
            # Field names can come from the file (columns, keys): make them printable.
            shown = None if field is None else field_name(field)
            self.problems.append(InputProblem(self.file_name, line, shown, message))

    def fail(self, message: str, line: int | None = None, field: str | None = None) -> NoReturn:
        """Record a problem that stops the read, and raise with everything found."""
        self.problem(line, field, message)
        self.stop()

    def stop(self) -> NoReturn:
        """Stop the read, raising InventoryError with every problem recorded so far."""
        raise InventoryError(list(self.problems), total=self.problem_count)

    # -- defaults ----------------------------------------------------------------

    def use_cli_defaults(self, defaults: InventoryDefaults) -> None:
        """The command line's values; a bad one is one problem, not one per row."""
        given: dict[str, Any] = {
            "keyname": defaults.keyname,
            "userid": defaults.userid,
            "mode": defaults.mode,
        }
        for key, value in given.items():
            if value is None:
                continue
            flag = FLAGS.get(key, "--stop-server")
            try:
                if not isinstance(value, str) or not value.strip():
                    raise Bad(f"must be a non-empty string, got {value!r}")
                self._defaults[key] = CHECKS[key](value.strip())
            except Bad as err:
                self.problem(None, flag, str(err))
                self._defaults[key] = UNUSABLE
        for key, flag, value in (
            ("byol", "--byol", defaults.byol),
            ("cloud_init", "--cloud-init", defaults.cloud_init),
        ):
            if value is None:
                continue
            if isinstance(value, bool):
                self._defaults[key] = value
            else:
                self.problem(None, flag, f"must be true or false, got {value!r}")
                self._defaults[key] = UNUSABLE

    def file_default(self, key: str, text: str) -> None:
        """A default the file gives for field `key` ('' = not given); it overrides
        the command line's. Raises Bad if the value breaks the field's rule, and
        then marks the default unusable so rows relying on it are dropped quietly."""
        if not text:
            return
        try:
            self._defaults[key] = CHECKS[key](text)
        except Bad:
            self._defaults[key] = UNUSABLE
            raise

    def mark_default_unusable(self, key: str) -> None:
        """A file default reported as broken (given twice, wrong type)."""
        self._defaults[key] = UNUSABLE

    @property
    def defaults_in_effect(self) -> dict[str, Any]:
        """The defaults rows fall back on, by field (bad ones left out)."""
        return {k: v for k, v in self._defaults.items() if v is not UNUSABLE and v is not None}

    def begin_rows(self) -> None:
        """Freeze the defaults; call before the first `target`."""
        self._default_row = [self._defaults.get(key) for key in KNOWN]

    # -- rows --------------------------------------------------------------------

    def count_row(self, line: int | None) -> bool:
        """Count one data row; False (with a problem) once past max_rows."""
        self.rows += 1
        if self.rows > self.max_rows:
            self.problem(
                line, None, f"more than {self.max_rows} servers; the limit is {self.max_rows}"
            )
            return False
        return True

    def target(
        self,
        values: Sequence[str],
        extra: dict[str, str],
        line: int,
        problem_line: int,
        label: str,
        broken: Collection[str] = (),
    ) -> TargetSpec | None:
        """Apply defaults and rules to one row's known fields.

        `values` holds the fields in KNOWN order ('' = not given). `line`
        goes into the TargetSpec and duplicate messages; `problem_line` is the
        physical line for problems; `label` names the row ("line" or "entry").
        Keys in `broken` were reported already: the row is not yielded, and
        they are not called missing.
        """
        found: list[tuple[str, str]] = []
        # One list in KNOWN order, starting from the defaults: this runs for
        # every row, so it stays lean. UNUSABLE marks a value reported
        # already (a bad default, a broken key): the row is dropped quietly.
        out = self._default_row.copy()
        for index, text in enumerate(values):
            if text:
                try:
                    out[index] = CHECK_LIST[index](text)
                except Bad as err:
                    found.append((KNOWN[index], str(err)))
                    out[index] = UNUSABLE
        for index in REQUIRED_INDEXES:
            key = KNOWN[index]
            if out[index] is None and key not in broken:
                hint = f"; give it in the inventory or with {FLAGS[key]}" if key in FLAGS else ""
                found.append((key, f"missing{hint}"))
        project_id, server_id, region, keyname, userid, mode, byol, cloud_init = out
        if isinstance(project_id, str) and isinstance(server_id, str):
            earlier = self._seen.add(project_id, server_id, line)
            if earlier is not None:
                then, then_project = earlier
                if then_project == project_id:
                    message = f"duplicate: {label} {then} has the same project_id and server_id"
                else:
                    message = (
                        f"server {server_id} is already listed in {label} {then} under "
                        f"project {then_project}; a server belongs to one project"
                    )
                found.append(("server_id", message))
        if found:
            prefix = f"entry {line}: " if label == "entry" else ""
            for key, message in found:
                self.problem(problem_line, key, prefix + message)
            return None
        if broken or UNUSABLE in out:
            return None
        return TargetSpec(
            project_id=project_id,
            server_id=server_id,
            keyname=keyname,
            userid=userid,
            line=line,
            region=region,
            mode=mode,
            byol=byol,
            extra=extra,
            cloud_init=bool(cloud_init),
        )
