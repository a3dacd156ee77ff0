"""The Cloud-Init variant end to end: --cloud-init, the cloud_init column, --user-data."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SIM_TOKEN

from orchestrator.store.sqlite import StateStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
ENV = {"OS_AUTH_TOKEN": SIM_TOKEN}
SIM_ENV = {"SIM_TOKEN": SIM_TOKEN}
MARKER = "s3cr3t-bootstrap-Zq81"  # in the user data only: must not show anywhere
SCRIPT = f"#!/bin/bash\necho 'export VAULT_TOKEN={MARKER}' >> /etc/profile.d/vault.sh\n"
SIM_FAST = ("--job-seconds", "0.1:0.3")


def with_cloud_init_column(source: Path, target: Path) -> list[dict[str, str]]:
    with source.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        row["cloud_init"] = "yes" if n % 2 == 0 else "no"
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def everything_written(workdir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in workdir.rglob("*") if p.is_file())


def test_cloud_init_rows_use_v2_with_the_user_data_which_is_never_kept_in_clear(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
    fast: list[str],
) -> None:
    rows = with_cloud_init_column(make_inventory(12), workdir / "fleet.csv")
    user_data = workdir / "bootstrap.sh"
    user_data.write_text(SCRIPT, encoding="utf-8")
    state = workdir / "fleet.state.sqlite"
    run = ("run", workdir / "fleet.csv", "--state", state, "--rate", "200", *fast)
    with sim_process("--fleet", workdir / "fleet.csv", *SIM_FAST, env=SIM_ENV) as url:
        done = cli(
            *run, "--endpoint", url, "--user-data", user_data, "--log-level", "DEBUG", env=ENV
        )
        assert done.returncode == 0, done.stderr
        stats = sim_stats(url)
        assert stats["reinstalls_by_api"] == {"v1": 6, "v2": 6}
        assert stats["errors_by_code"] == {}  # the service's own checks took the v2 bodies

        # Edited between invocations: refused on resume unless accepted.
        user_data.write_text(SCRIPT + "echo changed\n", encoding="utf-8")
        refused = cli("resume", "--state", state, env=ENV)
        assert refused.returncode == 2
        assert f"user data {user_data} differs from the one the state file's runs used" in (
            refused.stderr
        )
        assert "--accept-changed-options" in refused.stderr
        accepted = cli("resume", "--state", state, "--accept-changed-options", *fast, env=ENV)
        assert accepted.returncode == 0, accepted.stderr
        assert sim_stats(url)["requests"]["reinstall"] == 12  # nothing was left to send

    with StateStore.open(state, readonly=True) as store:
        cloud_init = {t.server_id: t.spec.cloud_init for t in store.iter_targets()}
        options = store.invocations()[0].options
    assert cloud_init == {r["server_id"]: r["cloud_init"] == "yes" for r in rows}
    assert options["user_data"]["path"] == str(user_data.resolve())
    assert re.fullmatch(r"[0-9a-f]{64}", options["user_data"]["sha256"])
    assert options["request_options"]["user_data_sha256"] == options["user_data"]["sha256"]
    written = everything_written(workdir).decode("utf-8", "replace")
    assert MARKER not in written.replace(SCRIPT, "")  # only in the user data file itself
    assert "ZXhwb3J0IFZBVUxUX1RPS0VO" not in written  # nor base64-encoded anywhere


def test_bad_user_data_is_refused_before_anything_is_sent(
    cli: Cli,
    workdir: Path,
    make_inventory: Callable[..., Path],
    sim_process: Callable[..., Any],
    sim_stats: Callable[[str], dict[str, Any]],
) -> None:
    inventory = make_inventory(4)
    (workdir / "big.sh").write_bytes(b"#" * 32769)
    (workdir / "bin").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00")
    (workdir / "latin1.sh").write_bytes(b"echo M\xfcller\n")
    (workdir / "dir").mkdir()
    cases = {
        "big.sh": "larger than 32768 bytes (32 KB), the limit before base64 encoding",
        "bin": "is binary (a NUL byte at offset 7)",
        "latin1.sh": "is not UTF-8 text",
        "dir": "is a directory",
        "missing.sh": "no such file",
    }
    with sim_process("--fleet", inventory, env=SIM_ENV) as url:
        for name, message in cases.items():
            bad = workdir / name
            done = cli(
                "run", inventory, "--cloud-init", "--user-data", bad, "--endpoint", url,
                "--state", workdir / "s.sqlite", env=ENV,
            )  # fmt: skip
            assert done.returncode == 2, name
            assert f"error: --user-data {bad}: {message}" in done.stderr
            assert not (workdir / "s.sqlite").exists()
        # Good user data, but no target would carry it: the servers would lose it.
        (workdir / "ok.sh").write_text("#!/bin/sh\necho ok\n", encoding="utf-8")
        done = cli(
            "run", inventory, "--user-data", workdir / "ok.sh", "--endpoint", url,
            "--state", workdir / "s.sqlite", env=ENV,
        )  # fmt: skip
        assert done.returncode == 2
        assert "--user-data is sent only with the Cloud-Init API, and no target uses it" in (
            done.stderr
        )
        assert not (workdir / "s.sqlite").exists()
        stats = sim_stats(url)
    plan = cli("plan", inventory, "--cloud-init", "--user-data", workdir / "big.sh")
    assert plan.returncode == 2 and cases["big.sh"] in plan.stderr
    nothing = {"reinstall": 0, "job": 0, "server": 0, "list_v1": 0, "list_nova": 0}
    assert stats["requests"] == nothing


def test_plan_counts_targets_per_api_and_describes_the_user_data(
    cli: Cli, workdir: Path, make_inventory: Callable[..., Path]
) -> None:
    with_cloud_init_column(make_inventory(10), workdir / "fleet.csv")
    (workdir / "init.yaml").write_text("#cloud-config\n", encoding="utf-8")

    done = cli("plan", workdir / "fleet.csv", "--user-data", workdir / "init.yaml")

    assert done.returncode == 0, done.stderr
    assert "  API: Cloud-Init (v2) 5, v1 5\n" in done.stdout
    assert "user data: " in done.stdout and "(14 bytes, sha256 " in done.stdout
    assert json.dumps(done.stdout).count("cloud-config") == 0
