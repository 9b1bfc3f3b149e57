"""Headless Chromium driven through chromium-driver (Debian's packages); never downloads one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NPM = shutil.which("npm")
MISSING = (
    "the browser tests need chromium, chromium-driver and npm "
    "(apt-get install chromium chromium-driver npm; .ci/run installs them)"
)

# Root in a container needs --no-sandbox; the rest keeps Chromium off the network and quiet.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def headless_chromium(profile: Path) -> Iterator[Any]:
    """A selenium driver of a fresh headless Chromium whose profile lives in `profile`, with
    the console logged (Chromium reports there what CSP and CORS refuse)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None
    assert CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (*CHROMIUM_ARGUMENTS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
