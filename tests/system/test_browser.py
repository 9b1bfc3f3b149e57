"""GraphiQL and Swagger UI in a real headless Chromium, under the pages' Content-Security-Policy:
assets from a local npm copy, an authenticated query in each."""

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
import jwt
import pytest

import main
from resolvers.auth import sign_development_token
from rest_compat.docs import SWAGGER_UI_PACKAGE
from schema.graphiql import GRAPHIQL_PACKAGES
from tests.support.app import make_settings
from tests.support.live import live_server
from tests.support.tokens import hs256_token

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None or NPM is None,
        reason="the browser tests need chromium, chromium-driver and npm "
        "(apt-get install chromium chromium-driver npm; .ci/run installs them)",
    ),
]

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
    """GraphiQL's and Swagger UI's npm packages unpacked as `name@version/`, the layout
    GRAPHIQL_ASSETS_URL names."""
    assert NPM is not None
    root = tmp_path_factory.mktemp("graphiql-assets")
    for name, version in [*GRAPHIQL_PACKAGES.items(), SWAGGER_UI_PACKAGE]:
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
    # The console, where Chromium reports whatever the Content-Security-Policy blocks.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def create_task(url: str, user_id: str, token: str, title: str) -> None:
    """A task of `user_id`'s, created over REST, for the page under test to find."""
    created = httpx.post(
        f"{url}/api/{user_id}/tasks",
        json={"title": title},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201


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
        create_task(url, "browser-user", token, "Seen in GraphiQL")
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
        assert_nothing_blocked(browser)


def test_development_swagger_ui_is_authorised_and_tries_a_route_out(
    tmp_path: Path, assets_url: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # What `make run` serves: the embedded PostgreSQL and its development secret.
    settings = main.read_settings(
        {"DATA_DIR": str(tmp_path / "data"), "GRAPHIQL_ASSETS_URL": assets_url}
    )
    secret = settings.auth.secret
    assert secret is not None
    token = sign_development_token(secret, main.DEV_USER_ID)
    with live_server(settings) as url:
        create_task(url, main.DEV_USER_ID, token, "Seen in Swagger UI")
        browser.get(f"{url}/api/docs")
        wait = WebDriverWait(browser, 30)
        # Authorised on arrival, with nothing typed: the Authorize button shows a closed lock.
        wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".btn.authorize.locked"))
        authorized = browser.execute_script("return window.ui.authSelectors.authorized().toJS();")
        offered = jwt.decode(authorized["bearer"]["value"], secret, algorithms=["HS256"])
        assert offered["sub"] == main.DEV_USER_ID
        operation = "#operations-default-listTasks"
        browser.find_element(By.CSS_SELECTOR, f"{operation} .opblock-summary-control").click()
        wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
        browser.find_element(By.CSS_SELECTOR, f"{operation} .try-out__btn").click()
        user_id = f'{operation} tr[data-param-name="user_id"] input'
        browser.find_element(By.CSS_SELECTOR, user_id).send_keys(main.DEV_USER_ID)
        browser.find_element(By.CSS_SELECTOR, f"{operation} .execute").click()
        response = f"{operation} .live-responses-table tr.response"
        wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, response))
        status = browser.find_element(By.CSS_SELECTOR, f"{response} .response-col_status")
        assert status.text.strip() == "200"
        body = browser.find_element(By.CSS_SELECTOR, f"{response} .response-col_description pre")
        assert json.loads(body.text)[0]["title"] == "Seen in Swagger UI"
        assert_nothing_blocked(browser)


def assert_nothing_blocked(driver: Any) -> None:
    """The page's Content-Security-Policy refused it nothing (Chromium says so on the console)."""
    refused = [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert refused == []


def _text(driver: Any, selector: str) -> str:
    value = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.CodeMirror.getValue() : '';",
        selector,
    )
    return str(value)
