"""Headless Debian Chromium under selenium, as root in a sandbox, with no network of its own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
)  # fmt: skip


def headless_chromium(profile: Path, *flags: str) -> Any:
    """A Chrome driver on a fresh `profile` dir; `flags` are added to the sandbox's own.

    chromium and chromedriver are test requirements (.ci/run installs them): missing, they fail.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "needs Debian's chromium and chromium-driver (apt install ...)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))
