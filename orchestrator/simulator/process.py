"""The simulator as its own process: `python -m orchestrator simulate --port 0 ARGS`.

    from orchestrator.simulator import SimulatorProcess

    with SimulatorProcess("--fleet", inventory, env={"SIM_TOKEN": "t0k"}) as sim:
        ...  # send requests to sim.url; read sim.stats()

`SimulatorProcess` owns the child process from start to end: it starts it on a
free port, learns the URL from the first stdout line (bounded by a timeout) and,
with `--tls`, the CA certificate to trust from the second (`ca_bundle`),
keeps its stderr drained into a temporary file (so a chatty simulator cannot
block, and the tail can explain a failed start), and stops it with SIGTERM,
then SIGKILL if it does not exit, closing every pipe. For tests, load measurements
and tools that need the simulator out of their own process; `Simulator` runs it
in-process.

The child starts with `IN_PROCESS_DEFAULTS` before the caller's arguments: the
instant timings and failure model of `SimulatorConfig`, as the in-process
`Simulator` has, rather than the command line's realistic defaults, so tests
stay fast. A caller's own flag comes later and wins (`--queue-seconds 5:30`).

The child inherits this environment without credentials (variables starting
with SIM_, OS_AUTH or HUAWEICLOUD_SDK_), so a caller's secrets never reach the
simulator by accident; `env` then adds exactly what the caller means to pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

# Never inherited by the child: credentials reach it only through `env`.
CREDENTIAL_PREFIXES = ("SIM_", "OS_AUTH", "HUAWEICLOUD_SDK_")
STOP_TIMEOUT = 10.0
STATS_TIMEOUT = 10.0
_STDERR_TAIL = 2000  # characters of stderr quoted when the start fails
# `SimulatorConfig`'s defaults for what `simulate` defaults to realistically.
IN_PROCESS_DEFAULTS = (
    "--queue-seconds", "0",
    "--power-off-seconds", "0",
    "--stopped-seconds", "0",
    "--fail-to-error-rate", "1",
)  # fmt: skip


def read_stats(
    url: str, timeout: float = STATS_TIMEOUT, ca_bundle: Path | None = None
) -> dict[str, Any]:
    """`GET {url}/_sim/stats` of a running simulator, straight to it (never via a proxy),
    over HTTPS trusting `ca_bundle` where the simulator serves HTTPS."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ca_bundle is not None:
        context = ssl.create_default_context(cafile=str(ca_bundle))
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    with opener.open(url + "/_sim/stats", timeout=timeout) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def simulator_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without credentials, then `env` on top."""
    child = {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_PREFIXES)}
    child.update(env or {})
    return child


class SimulatorProcess:
    """`orchestrator simulate --port 0 ARGS` in a child process; `with` starts and stops it."""

    def __init__(
        self,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.args = [str(a) for a in args]
        self.env = simulator_env(env)
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.returncode: int | None = None
        self._url: str | None = None
        self.ca_bundle: Path | None = None  # with --tls: the CA certificate to trust
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "orchestrator", "simulate", "--port", "0",
            *IN_PROCESS_DEFAULTS, *self.args,
        ]  # fmt: skip

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the simulator process is not running")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """Where the simulator listens, as it printed it (e.g. http://127.0.0.1:40123)."""
        if self._url is None:
            raise RuntimeError("the simulator process was not started")
        return self._url

    def start(self) -> SimulatorProcess:
        """Start the child and wait for its URL; RuntimeError (with its stderr) if none comes."""
        if self._process is not None:
            raise RuntimeError("the simulator process is already running")
        self.returncode = None
        self._url = None
        self.ca_bundle = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        try:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=self.env,
                cwd=self.cwd,
            )
            # With --tls the simulator prints the CA certificate's path after the URL.
            expected = 2 if "--tls" in self.args else 1
            lines, ended = self._first_lines(expected)
        except BaseException:
            self.stop()
            raise
        line = lines[0] if lines else ""
        if len(lines) < expected or not line.startswith(("http://", "https://")):
            code = self._end_process(grace=STOP_TIMEOUT if ended else 0.0)
            tail = self._stderr_tail() or "(empty)"
            self.stop()
            if ended:
                what = f"exited with code {code} before printing its URL"
            else:
                what = f"printed no URL within {self.startup_timeout:g} s (stopped: {code})"
            raise RuntimeError(f"the simulator {what}; stdout {lines!r}; stderr: {tail}")
        self._url = line
        if len(lines) == 2:
            self.ca_bundle = Path(lines[1])
        return self

    def stats(self) -> dict[str, Any]:
        """The answer of `GET /_sim/stats`."""
        return read_stats(self.url, ca_bundle=self.ca_bundle)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; close the pipes. Its exit code; safe to repeat."""
        self._end_process()
        self._process = None
        stderr, self._stderr = self._stderr, None
        if stderr is not None:
            stderr.close()
        return self.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _first_lines(self, count: int) -> tuple[list[str], bool]:
        """The first `count` whole stdout lines (fewer if no more came by the timeout),
        and whether stdout ended."""
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        data = b""
        ended = False
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while data.count(b"\n") < count:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    break
                chunk = os.read(fd, 4096)
                if not chunk:  # end of file: the child is exiting
                    ended = True
                    break
                data += chunk
        whole = data.split(b"\n")[:-1][:count]  # after the last newline: a cut line
        return [line.decode(errors="replace").strip() for line in whole], ended

    def _end_process(self, grace: float = 0.0) -> int | None:
        """Give the child `grace` seconds to exit by itself, then SIGTERM, then SIGKILL."""
        process = self._process
        if process is None:
            return self.returncode
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
        self.returncode = process.returncode
        return self.returncode

    def _stderr_tail(self) -> str:
        """The last characters the child wrote to stderr."""
        if self._stderr is None:
            return ""
        size = self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, size - _STDERR_TAIL))
        return self._stderr.read().decode(errors="replace").strip()
