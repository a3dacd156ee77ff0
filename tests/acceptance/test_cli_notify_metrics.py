"""What a run tells the outside while it lasts, from the command line: a webhook on
loopback hears the rollout and the end; Prometheus' own parser reads the metrics
file and the metrics port. The webhook's URL (its path is its secret) never shows."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.cloud.endpoints import is_loopback

SECRET_PATH = "/hooks/T0AB/B0CD/kq3Zw9notifysecret"


class Hook:
    """A webhook receiver on loopback, in a thread: keeps every JSON body it gets."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{SECRET_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def events(self) -> list[str]:
        return [b["event"] for b in self.bodies]


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    receiver._thread.start()
    yield receiver
    receiver._server.shutdown()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, keyed by name and labels (run_id left out), as Prometheus reads it."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "run_id")
            found[(s.name, labels)] = s.value
    return found


def no_secret_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and b"notifysecret" in p.read_bytes()]


def test_the_webhook_hears_each_wave_and_the_end_and_the_metrics_file_parses(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    make_inventory: Callable[..., Path],
    workdir: Path,
    fast: list[str],
    hook: Hook,
) -> None:
    inventory = make_inventory(24, projects=2)
    metrics = workdir / "textfile" / "orchestrator.prom"
    metrics.parent.mkdir()
    done = cli(
        "run", inventory, "--simulate", *fast, "--canary", "2", "--waves", "50%,100%",
        "--notify", hook.url, "--metrics-file", metrics, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    assert hook.events().count("wave_ended") == 2  # the canary, then the 50 % wave
    end = hook.bodies[-1]
    assert end["event"] == "run_ended"
    assert end["exit_code"] == 0 and end["outcome"] == "complete"
    assert end["counts"] == {"succeeded": 24}
    assert (workdir / end["report"]).is_file()
    assert "24 succeeded" in end["text"]  # the line Slack and Teams show

    found = samples(metrics.read_text())
    assert found[("orchestrator_targets", frozenset({("state", "succeeded")}))] == 24
    assert found[("orchestrator_targets", frozenset({("state", "pending")}))] == 0
    assert found[("orchestrator_requests_total", frozenset({("api", "reinstall")}))] == 24

    assert SECRET_PATH not in done.stdout + done.stderr
    assert no_secret_under(workdir) == []  # the state file, its log, the report


def test_a_failed_canary_is_notified_and_the_port_serves_while_the_run_lasts(
    cli_start: Callable[..., subprocess.Popen[str]],
    make_inventory: Callable[..., Path],
    workdir: Path,
    fast: list[str],
    hook: Hook,
) -> None:
    inventory = make_inventory(10, projects=1)
    proc = cli_start(
        "run", inventory, "--simulate", *fast, "--canary", "2", "--sim-job-fail-rate", "1",
        "--sim-job-seconds", "4", "--notify", hook.url, "--metrics-port", "0",
    )  # fmt: skip
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"metrics served at (http://\S+)", line)
        url = found.group(1) if found else None
    assert url is not None and is_loopback(url.split("/")[2].split(":")[0])
    with urllib.request.urlopen(url, timeout=5) as answer:  # the run is still going
        scraped = samples(answer.read().decode())
    assert sum(v for (name, _), v in scraped.items() if name == "orchestrator_targets") == 10
    _, rest = proc.communicate(timeout=90)
    assert proc.returncode == 3, rest  # the canary failed: held, 8 targets left

    assert hook.events()[0] == "canary_failed"
    assert hook.bodies[-1]["event"] == "run_ended"
    assert hook.bodies[-1]["exit_code"] == proc.returncode
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
        pytest.fail("the metrics port outlived the run")
    assert no_secret_under(workdir) == []


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://127.0.0.1/x", "expected an http(s) URL"),
        ("http://hooks.example.net/x", "plain http to hooks.example.net: use https"),
        ("https://user:pw@hooks.example.net/x", "must not carry a user name or password"),
    ],
)
def test_a_webhook_that_cannot_be_used_is_a_usage_error(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    sample_inventory: Path,
    workdir: Path,
    url: str,
    said: str,
) -> None:
    done = cli("run", sample_inventory, "--simulate", "--notify", url)
    assert done.returncode == 2
    assert said in done.stderr
    assert not (workdir / "reports").exists()  # refused before anything was created


def test_the_metrics_address_must_be_an_ip_address(
    cli: Callable[..., subprocess.CompletedProcess[str]], sample_inventory: Path
) -> None:
    done = cli("run", sample_inventory, "--simulate", "--metrics-port", "0",
               "--metrics-address", "metrics.example.net")  # fmt: skip
    assert done.returncode == 2
    assert "--metrics-address: not an IP address: 'metrics.example.net'" in done.stderr
