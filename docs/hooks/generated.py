"""MkDocs hook: the reference tables, generated from the code at every build.

A page asks for a table with a line of its own, `<!-- generated: NAME -->`, and
the hook puts the table there before the page is rendered. What a table says is
read from the code (click's command tree, the exit codes text, the error codes
set in the package, the retry decision, the transition table, the module
docstrings, the log fields), so an option, a code or a module that changes
changes the site with it. A name the hook does not know, or a code the package
sets that has no meaning written below, fails the build (`mkdocs build --strict`
runs in CI), so the reference cannot drift from the code without CI saying so.

Nothing here is product code: it only imports the package and reads it.
"""

from __future__ import annotations

import ast
import functools
import html
import importlib
import inspect
import re
import tokenize
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import click
from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)
DISTRIBUTION = "ecs-reinstall-orchestrator"
SCRIPT = "orchestrator"

# The commands in the order an operator meets them; any command not named here
# follows, alphabetically, so a new command is never left out.
COMMAND_ORDER = (
    "run", "resume", "status", "report", "plan", "retry", "backup", "probe", "simulate",
)  # fmt: skip

# What each error code the orchestrator sets means. The codes themselves are
# found in the package (every string constant `Orchestrator.Name`); the build
# fails when one is set there and not described here, or described here and
# set nowhere.
ORCHESTRATOR_CODES = {
    "Orchestrator.JobTimeout": (
        "The job (or the server's rebuild, when it is followed by the server) did not end"
        " within `--job-timeout`; the job is asked once more first. The server may still be"
        " rebuilding."
    ),
    "Orchestrator.PendingPayment": (
        "The job stayed `PENDING_PAYMENT` until `--job-timeout`: the order of a yearly/monthly"
        " server awaits payment. The reinstall was accepted and may still run once the order"
        " is paid: pay or cancel it before any `orchestrator retry`."
    ),
    "Orchestrator.UnknownJobStatus": (
        "The job reported a status the reference does not name: reported, never interpreted."
        " The target is settled from its server (the job id proves the reinstall was"
        " accepted, so it is never sent again); the code stays only while it is in doubt."
    ),
    "Orchestrator.ServerError": (
        "Settled from the server: the reinstall was acted on and the server is now in"
        " `ERROR`. Where the job says `FAIL`, the job's own code is reported instead."
    ),
    "Orchestrator.Unverified": (
        "Whether the reinstall was acted on, or how it ended, cannot be told from the"
        " server. Never sent again by a run; `orchestrator retry` leaves it out unless"
        " `--i-checked-unverified`: check the server by hand first."
    ),
    "Orchestrator.NotVerified": (
        "The job said `SUCCESS` (or the rebuild followed on the server ended) but the server"
        " is not back: `ERROR`, not relaunched (`launched_at` not newer), or not stable after"
        " a few reads. Never counted as a success."
    ),
    "Orchestrator.NotAccepted": (
        "Settled from the server as never acted on more times than the resend cap allows"
        " (the cap is kept in the state file, so it holds across resumes). Not sent again:"
        " check the server, then `orchestrator retry`."
    ),
}


# Pages that keep the record (dated figures, history) may name files that are gone.
HISTORY_PAGES = frozenset({"measurements.md", "measurements-pacing.md", "changelog.md"})
SOURCE_PATH = re.compile(r"\b(?:orchestrator|tests|benchmarks)/[\w/]*\w(?:\.\w+)?/?(?![\w*])")
PLACEHOLDER = re.compile(r"/[A-Z]+(?:\.\w+)?$")  # benchmarks/NAME.py


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace each marker line with the table it names, check the hand-written tables
    a `checked` marker stands before, and check that every file of the repository a
    page names exists (a module that moves must take its mentions along)."""
    if page.file.src_uri not in HISTORY_PAGES:
        check_paths(page.file.src_uri, markdown)

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"unknown generated table {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]().rstrip() + "\n"

    for match in CHECKED.finditer(markdown):
        check_table(match.group(1), markdown[match.end() :])
    return MARKER.sub(table, CHECKED.sub("", markdown))


def check_paths(page: str, markdown: str) -> None:
    root = Path(__file__).resolve().parents[2]
    missing = sorted(
        {
            m
            for m in SOURCE_PATH.findall(markdown)
            if not PLACEHOLDER.search(m) and not (root / m.rstrip("/")).exists()
        }
    )
    if missing:
        raise PluginError(f"{page} names files the repository does not have: {missing}")


# --- hand-written tables, checked against the code ------------------------------------
#
# Some tables need prose per row that no code holds (what a summary.json field means,
# what evidence a preflight finding rests on). They are written in the page, after a
# line `<!-- checked: NAME -->`; the names in the first column (in backticks) must be
# exactly the names the code has, or the build fails.

CHECKED = re.compile(r"^<!-- checked: ([a-z-]+) -->\n", re.MULTILINE)


def check_table(name: str, after: str) -> None:
    if name not in CHECKS:
        raise PluginError(f"unknown checked table {name!r}; known: {sorted(CHECKS)}")
    lines = after.lstrip("\n").splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(line)
    if len(rows) < 3:
        raise PluginError(f"no table follows the marker 'checked: {name}'")
    written: set[str] = set()
    for row in rows[2:]:
        first = row.strip("|").split(" | ")[0]
        written.update(re.findall(r"`([^`]+)`", first))
    expected = set(CHECKS[name]())
    if written != expected:
        raise PluginError(
            f"the table 'checked: {name}' is out of step with the code:"
            f" missing {sorted(expected - written)}, not in the code {sorted(written - expected)}"
        )


def returned_keys(module: ModuleType, function: str) -> list[str]:
    """The keys of the dict literal a function returns (its top level only)."""
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Dict):
                    return [
                        k.value
                        for k in inner.value.keys
                        if isinstance(k, ast.Constant) and isinstance(k.value, str)
                    ]
    raise PluginError(f"{module.__name__}.{function} no longer returns a dict literal")


def enum_values(module: ModuleType, name: str) -> list[str]:
    return [member.value for member in getattr(module, name)]


CHECKS: dict[str, Callable[[], Iterable[str]]] = {
    "summary-json": lambda: returned_keys(home("summary_to_dict"), "summary_to_dict"),
    "status-json": lambda: returned_keys(home("status_to_dict"), "status_to_dict"),
    "run-json": lambda: returned_keys(home("run_to_dict"), "run_to_dict"),
    "plan-json": lambda: returned_keys(home("plan_to_dict"), "plan_to_dict"),
    "preflight-findings": lambda: enum_values(home("BLOCKING"), "Finding"),
}


# --- text helpers -----------------------------------------------------------------


def cell(text: str) -> str:
    """Plain text made safe for a Markdown table cell: nothing in it becomes markup."""
    return escaped(" ".join(text.split()))


def escaped(text: str) -> str:
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", html.escape(text, quote=False))


def doc_cell(text: str) -> str:
    """A docstring or comment for a table cell: its `code` spans (and RST's ``code``)
    shown as code, everything else as plain text."""
    parts = re.split(r"(``?[^`]+``?)", " ".join(text.split()))
    return "".join(code(p.strip("`")) if p.startswith("`") else escaped(p) for p in parts)


def code(text: str, css: str = "") -> str:
    """Text in a code span inside a table cell (a `|` in it must not end the cell)."""
    attr = f' class="{css}"' if css else ""
    return f"<code{attr}>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def paragraphs(text: str) -> str:
    """click's help text as Markdown: `\\b` paragraphs kept as written, others reflowed."""
    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(text)):
        if para.startswith("\b"):
            out.append("```text\n" + para.lstrip("\b").strip("\n") + "\n```")
        else:
            out.append(cell(para).replace("\\|", "|"))
    return "\n\n".join(out)


def first_paragraph(doc: str | None) -> str:
    return " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())


# --- the command line -------------------------------------------------------------


def entry_module() -> ModuleType:
    """The module of the `orchestrator` console script, wherever it lives."""
    for ep in metadata.distribution(DISTRIBUTION).entry_points:
        if ep.group == "console_scripts" and ep.name == SCRIPT:
            return importlib.import_module(ep.module)
    raise PluginError(f"no console script {SCRIPT!r} in {DISTRIBUTION}")


def command_group() -> click.Group:
    """The click group the console script runs: the one holding `run`."""
    module = entry_module()
    for value in vars(module).values():
        if isinstance(value, click.Group) and "run" in value.commands:
            return value
    raise PluginError(f"no click group with a 'run' command in {module.__name__}")


def ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    first = [n for n in COMMAND_ORDER if n in names]
    return first + sorted(names - set(first))


TRAILING_EXTRA = re.compile(r"\s{2}\[([^\[\]]*)\]$")


def split_extras(text: str) -> tuple[str, list[str]]:
    """Help text and its trailing `[default: ...]`, `[x>=1]`, `[required]` groups, as
    `--help` prints them (click's own and those written into the help text)."""
    extras: list[str] = []
    while (m := TRAILING_EXTRA.search(text)) is not None:
        extras.insert(0, m.group(1))
        text = text[: m.start()]
    return text.strip(), extras


def command_section(cmd: click.Command, ctx: click.Context, exit_codes: str | None) -> str:
    name = ctx.info_name
    parts = [f"## `{ctx.command_path}` {{#{name}}}", ""]
    if cmd.help:
        parts += [paragraphs(cmd.help), ""]
    parts += ["```text", cmd.get_usage(ctx).removeprefix("Usage: "), "```", ""]
    arguments = [p for p in cmd.get_params(ctx) if isinstance(p, click.Argument)]
    if arguments:
        rows = [
            [code(a.make_metavar(ctx)), "required" if a.required else "optional"] for a in arguments
        ]
        parts += ["Arguments:", "", table(["argument", ""], rows)]
    rows = []
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        declared, help_text = record
        text, extras = split_extras(help_text)
        rows.append([code(declared, "option"), cell(text), "; ".join(cell(e) for e in extras)])
    parts += ["Options:", "", table(["option", "meaning", "default, limits"], rows)]
    if exit_codes is not None and cmd.epilog == exit_codes:
        parts += ["Exits with the [exit codes](exit-codes.md) of a run.", ""]
    elif cmd.epilog and "Exit codes" in cmd.epilog:
        # A command's own codes, as its --help prints them.
        heading = cmd.epilog.replace("\b", "").strip().splitlines()[0].rstrip(":")
        parts += [f"{heading}:", "", exit_code_table(cmd.epilog)]
    return "\n".join(parts)


def cli_reference() -> str:
    group = command_group()
    exit_codes = getattr(entry_module(), "EXIT_CODES", None)
    root = click.Context(group, info_name=SCRIPT)
    parts = [paragraphs(group.help or ""), ""]
    names = ordered(group.list_commands(root))
    rows = []
    for name in names:
        cmd = group.get_command(root, name)
        assert cmd is not None
        rows.append([f"[`{SCRIPT} {name}`](#{name})", cell(cmd.get_short_help_str(200))])
    parts += [table(["command", "what it does"], rows)]
    for name in names:
        cmd = group.get_command(root, name)
        assert cmd is not None
        ctx = click.Context(cmd, info_name=name, parent=root)
        parts += [command_section(cmd, ctx, exit_codes)]
    return "\n".join(parts)


def exit_codes() -> str:
    text = getattr(entry_module(), "EXIT_CODES", None)
    if not isinstance(text, str):
        raise PluginError("EXIT_CODES is gone from the console script's module")
    return exit_code_table(text)


def exit_code_table(text: str) -> str:
    """The codes of an exit-codes text (as --help prints it) as a table."""
    meanings: dict[str, str] = {}
    current = None
    for line in text.replace("\b", "").splitlines():
        if m := re.match(r"^\s+(\d)\s{2,}(.*)$", line):
            current = m.group(1)
            meanings[current] = m.group(2)
        elif current is not None and line.strip():
            meanings[current] += " " + line.strip()
    if not meanings:
        raise PluginError("no exit code found in EXIT_CODES")
    return table(["code", "meaning"], ([f"`{c}`", cell(m)] for c, m in meanings.items()))


# --- error codes ------------------------------------------------------------------


def package_files() -> Iterator[tuple[str, Path]]:
    package = importlib.import_module("orchestrator")
    root = Path(package.__file__ or "").parent
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("orchestrator", *path.relative_to(root).with_suffix("").parts))
        yield module.removesuffix(".__init__"), path


def home(name: str) -> ModuleType:
    """The one module of the package that defines `name` at its top level (a class, a
    function or an assignment), imported: so the tables follow a module that moves."""
    found = definitions().get(name, [])
    if len(found) != 1:
        raise PluginError(f"{name!r} should be defined by one module of the package: {found}")
    return importlib.import_module(found[0])


@functools.cache
def definitions() -> dict[str, list[str]]:
    """Every top-level name of the package's modules, and the modules defining it."""
    found: dict[str, list[str]] = {}
    for module, path in package_files():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names: list[str] = []
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
            for name in names:
                found.setdefault(name, []).append(module)
    return found


def string_constants(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def orchestrator_codes() -> dict[str, list[str]]:
    """Every `Orchestrator.Name` code in the package, and the modules that name it."""
    found: dict[str, list[str]] = {}
    for module, path in package_files():
        if module.startswith("orchestrator.simulator"):
            continue
        for value in string_constants(path):
            if re.fullmatch(r"Orchestrator\.[A-Z][A-Za-z]*", value):
                modules = found.setdefault(value, [])
                if module not in modules:
                    modules.append(module)
    return found


def error_codes_orchestrator() -> str:
    failures = home("FAILURE_TABLE")
    found = orchestrator_codes()
    undescribed = sorted(set(found) - set(ORCHESTRATOR_CODES))
    unused = sorted(set(ORCHESTRATOR_CODES) - set(found))
    if undescribed or unused:
        raise PluginError(
            "docs/hooks/generated.py ORCHESTRATOR_CODES is out of date:"
            f" set in the package but not described {undescribed},"
            f" described but set nowhere {unused}"
        )
    rows = []
    for name in sorted(found):
        rule = failures.rule(name)
        hint = failures.hint(name)
        rows.append(
            [
                f"`{name}`",
                cell_md(ORCHESTRATOR_CODES[name]),
                "yes" if rule.counts else "no",
                cell(hint or ""),
                ", ".join(f"`{m}`" for m in found[name]),
            ]
        )
    return table(["code", "meaning", "counts in budgets", "hint when it repeats", "named in"], rows)


def cell_md(text: str) -> str:
    """Hand-written Markdown (code spans allowed) for a table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def error_codes_service() -> str:
    failures = home("FAILURE_TABLE")
    rows = []
    for name, rule in failures.FAILURE_TABLE.items():
        if name.startswith("Orchestrator."):
            continue
        rows.append(
            [
                f"`{name}`",
                "never (flow control)" if name in failures.FLOW_CONTROL_CODES else "yes",
                cell(rule.why),
                cell(failures.hint(name) or ""),
            ]
        )
    rows.append(["any other code, or none", "yes", cell(failures.rule(None).why), ""])
    return table(["code", "counts in budgets", "why", "hint when it repeats"], rows)


def error_classes() -> str:
    """The API errors of `orchestrator.errors` (the tree in its docstring says what
    answers each stands for), whether the retry policy sends the call again, and what
    the engine's one table (`decide(call, error)`) makes of each, call by call."""
    errors = home("ApiError")
    policy = home("RetrySettings")
    engine = home("Act")
    calls = list(engine.Call)
    tree = re.findall(r"^([ │]*)[├└]── (\w+)\s+(.*)$", errors.__doc__ or "", re.MULTILINE)
    rows = []
    top = None
    for indent, name, said in tree:
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.ApiError)):
            continue
        top = len(indent) if top is None else top
        # Made without their arguments: both decisions ask only the error's class.
        error = cls.__new__(cls)
        retried = policy.decide(error) is policy.Decision.RETRY
        acts = [f"`{engine.decide(call, error).value}`" for call in calls]
        depth = (len(indent) - top) // 4
        name_cell = "&nbsp;" * 4 * depth + f"`{name}`"
        rows.append([name_cell, cell(said), "yes" if retried else "", *acts])
    if not rows:
        raise PluginError("no ApiError subclass found in the tree of orchestrator.errors")
    header = ["error", "stands for", "retried in the call", *(f"`{c.value}`" for c in calls)]
    call_rows = [
        [f"`{c.value}`", doc_cell(comment)] for c, comment in enum_comments(engine, "Call")
    ]
    act_rows = [[f"`{a.value}`", doc_cell(comment)] for a, comment in enum_comments(engine, "Act")]
    settings = policy.RetrySettings()
    budget = [
        [f"`{f}`", f"`{getattr(settings, f)}`", doc_cell(comment)]
        for f, comment in field_comments(policy, "RetrySettings")
    ]
    return "\n".join(
        [
            table(header, rows),
            "The calls:",
            "",
            table(["call", "what it is"], call_rows),
            "What each act does:",
            "",
            table(["act", "meaning"], act_rows),
            "The retry budget of one call (`RetrySettings`), spent before the table is asked:",
            "",
            table(["setting", "default", "meaning"], budget),
        ]
    )


# --- source comments --------------------------------------------------------------


def line_comments(module: ModuleType) -> dict[int, str]:
    path = Path(module.__file__ or "")
    with path.open("rb") as source:
        return {
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.tokenize(source.readline)
            if tok.type == tokenize.COMMENT
        }


def class_body(module: ModuleType, name: str) -> list[ast.stmt]:
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node.body
    raise PluginError(f"class {name} is gone from {module.__name__}")


def enum_comments(module: ModuleType, name: str) -> list[tuple[Any, str]]:
    """Each member of an enum with the comment on its line."""
    comments = line_comments(module)
    enum = getattr(module, name)
    out = []
    for node in class_body(module, name):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out.append((enum[node.targets[0].id], comments.get(node.lineno, "")))
    return out


def field_comments(module: ModuleType, name: str) -> list[tuple[str, str]]:
    """Each annotated field of a class with the comment on its line."""
    comments = line_comments(module)
    return [
        (node.target.id, comments.get(node.lineno, ""))
        for node in class_body(module, name)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]


# --- states, modules, logs ----------------------------------------------------------


def states() -> str:
    model = home("TRANSITIONS")
    rows = []
    for state, comment in enum_comments(model, "TargetState"):
        kind = (
            "final"
            if state in model.FINAL_STATES
            else "a reinstall may be under way"
            if state in model.ACTIVE_STATES
            else ""
        )
        nexts = ", ".join(f"`{s.value}`" for s in sorted(model.TRANSITIONS[state])) or "none"
        rows.append([f"`{state.value}`", doc_cell(comment), kind, nexts])
    operator = [
        [f"`{old.value}`", ", ".join(f"`{s.value}`" for s in sorted(new))]
        for old, new in model.OPERATOR_TRANSITIONS.items()
    ]
    return "\n".join(
        [
            table(["state", "meaning", "kind", "may move to"], rows),
            "Only `orchestrator retry` (an operator's command, never a run) may also move:",
            "",
            table(["from", "to"], operator),
        ]
    )


def modules() -> str:
    """One row per module: its file and the first paragraph of its docstring."""
    groups: dict[str, list[list[str]]] = {}
    for module, path in package_files():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if not doc:
            raise PluginError(f"{module} has no docstring: say in one line what it owns")
        folder = "/".join(module.split(".")[: -1 if path.name != "__init__.py" else None])
        groups.setdefault(folder, []).append([f"`{path.name}`", doc_cell(first_paragraph(doc))])
    out = []
    for folder in sorted(groups, key=lambda f: (f.count("/"), f)):
        out += [f"### `{folder}/`", "", table(["module", "owns"], groups[folder])]
    return "\n".join(out)


def log_fields() -> str:
    logsetup = home("STATE_CHANGE_FIELDS")
    progress = home("ProgressMeter")
    livestats = home("LiveStats")
    stats = livestats.LiveStats(
        counts={},
        total=0,
        requests={},
        throttled=0,
        submit_limit=1.0,
        query_limit=1.0,
        in_flight=0,
        max_in_flight=1,
    )
    summary = progress.ProgressMeter().read(stats).fields()
    change = ", ".join(f"`{f}`" for f in logsetup.STATE_CHANGE_FIELDS)
    interval = ", ".join(f"`{f}`" for f in summary if f != "event")
    records = home("RUN_START_FIELDS")
    start = ", ".join(f"`{f}`" for f in records.RUN_START_FIELDS)
    end = ", ".join(f"`{f}`" for f in records.RUN_END_FIELDS)
    return table(
        ["event", "fields besides `time`, `level`, `logger`, `event`, `message`"],
        [
            ["`run_start`", start],
            ["`state_change`", change],
            [f"`{summary['event']}`", interval],
            ["`run_end`", end],
        ],
    )


def columns(module: ModuleType, name: str) -> str:
    values = getattr(module, name)
    return ", ".join(f"`{v}`" for v in values) + "\n"


def known_regions() -> str:
    """The clouds' ECS endpoint patterns, known regions and exceptions, as the code has them."""
    regions = home("ecs_endpoint")
    rows = []
    for cloud in regions.CLOUDS:
        known = []
        for region in regions.KNOWN[cloud]:
            special = regions.EXCEPTIONS.get((cloud, region))
            known.append(f"`{region}`" + (f" (`{special}`)" if special else ""))
        rows.append([f"`{cloud}`", f"`{regions.PATTERNS[cloud]}`", ", ".join(known)])
    return table(["`--cloud`", "pattern", "known regions (an endpoint of its own)"], rows)


def next_steps() -> str:
    """The table of hints a run ends with: each reason, why, and what to run."""
    module = home("next_step")
    rows = []
    for stop, hint in module.HINTS.items():
        why = re.sub(r"\{(\w+)(:[^}]*)?\}", r"<\1>", hint.why)
        rows.append([f"`{stop.value}`", cell(why), cell(hint.gist)])
    return table(["reason", "the run says why", "what the hint says to do"], rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "next-steps": next_steps,
    "known-regions": known_regions,
    "targets-csv-columns": lambda: columns(home("csv_header"), "CSV_COLUMNS"),
    "retry-csv-columns": lambda: columns(home("RetryInventory"), "COLUMNS"),
    "preflight-csv-columns": lambda: columns(home("write_preflight"), "CSV_COLUMNS"),
    "cli": cli_reference,
    "exit-codes": exit_codes,
    "error-codes-orchestrator": error_codes_orchestrator,
    "error-codes-service": error_codes_service,
    "error-classes": error_classes,
    "states": states,
    "modules": modules,
    "log-fields": log_fields,
}
