"""Headless Chromium for the report tests and benchmarks: load a page, return its DOM.

Debian's `chromium` package (installed by .ci/run). Without it a test skips,
except in CI (CI=true), where a missing browser must fail the build.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser")


def chromium_or_skip() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed (apt-get install chromium); CI fails instead")


def measure(browser: str, page: Path, script: str, *, width: int = 1280) -> object:
    """Run `script` (JavaScript whose last value is JSON-able) in `page` once it has
    loaded, in a window `width` pixels wide; its value. The page itself is not changed:
    a copy beside it carries the script."""
    probe = page.with_name(f".measure-{page.name}")
    code = (
        "<script>window.addEventListener('load', function () {"
        " var out; try { out = (function () {" + script + "})(); }"
        " catch (e) { out = {error: String(e)}; }"
        " document.documentElement.dataset.measured = JSON.stringify(out); });</script>"
    )
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", code + "</body>"))
    try:
        dom = dump_dom(browser, probe, window=(width, 900))
    finally:
        probe.unlink()
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found is not None, dom[:2000]
    return json.loads(html.unescape(found.group(1)))


def dump_dom(
    browser: str,
    page: Path,
    fragment: str = "",
    timeout: float = 60,
    window: tuple[int, int] | None = None,
) -> str:
    """The DOM after the page's scripts ran, for `file://PAGE#FRAGMENT`."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *([f"--window-size={window[0]},{window[1]}"] if window else []),
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
