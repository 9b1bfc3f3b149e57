"""GraphiQL in a real headless Chromium: assets from a local npm copy, an authenticated query."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.graphiql import GRAPHIQL_PACKAGES
from tests.conftest import hs256_token, make_settings
from tests.support.live import live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None or NPM is None,
    reason="the GraphiQL browser test needs chromium, chromium-driver and npm "
    "(apt-get install chromium chromium-driver npm; .ci/run installs them)",
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


@pytest.fixture(scope="session")
def graphiql_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GraphiQL's npm packages unpacked as `name@version/`, the layout GRAPHIQL_ASSETS_URL names."""
    assert NPM is not None
    root = tmp_path_factory.mktemp("graphiql-assets")
    for name, version in GRAPHIQL_PACKAGES.items():
        packed = subprocess.run(
            [NPM, "pack", f"{name}@{version}", "--pack-destination", str(root), "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        [tarball] = json.loads(packed.stdout)
        target = root / f"{name}@{version}"
        with tarfile.open(root / tarball["filename"]) as archive:
            archive.extractall(target, filter="data")
        # npm tarballs keep everything under package/.
        for entry in (target / "package").iterdir():
            entry.rename(target / entry.name)
    return root


@pytest.fixture
def assets_url(graphiql_assets: Path) -> Iterator[str]:
    """The unpacked packages served over HTTP on 127.0.0.1, as an operator's mirror would."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(graphiql_assets))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven through chromium-driver; never downloads a browser."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None
    assert CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (*CHROMIUM_ARGUMENTS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def set_editor(driver: Any, selector: str, text: str) -> None:
    """Replace the text of a GraphiQL (CodeMirror 5) editor."""
    driver.execute_script(
        "document.querySelector(arguments[0]).CodeMirror.setValue(arguments[1]);", selector, text
    )


def test_graphiql_runs_an_authenticated_query(
    clean_database: str, assets_url: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    token = hs256_token("browser-user")
    settings = make_settings(clean_database, GRAPHIQL_ASSETS_URL=assets_url)
    with live_server(settings) as url:
        created = httpx.post(
            f"{url}/api/browser-user/tasks",
            json={"title": "Seen in GraphiQL"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201
        browser.get(f"{url}/graphql")
        wait = WebDriverWait(browser, 30)
        query_editor = ".graphiql-query-editor .CodeMirror"
        wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, query_editor))
        # The headers editor is open on arrival (defaultEditorToolsVisibility).
        headers_editor = 'section[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror'
        set_editor(browser, headers_editor, json.dumps({"Authorization": f"Bearer {token}"}))
        set_editor(browser, query_editor, "query Mine { tasks(first: 5) { nodes { title } } }")
        browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
        result = ".result-window .CodeMirror"
        wait.until(lambda driver: "Seen in GraphiQL" in _text(driver, result))
        assert json.loads(_text(browser, result)) == {
            "data": {"tasks": {"nodes": [{"title": "Seen in GraphiQL"}]}}
        }


def _text(driver: Any, selector: str) -> str:
    value = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.CodeMirror.getValue() : '';",
        selector,
    )
    return str(value)
