"""GraphiQL and Swagger UI in a real headless Chromium, under the pages' Content-Security-Policy:
assets from a local npm copy, an authenticated query in each."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
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
from tests.support.chromium import CHROMEDRIVER, CHROMIUM, MISSING, NPM, headless_chromium
from tests.support.live import live_server
from tests.support.static import static_server
from tests.support.tokens import hs256_token

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None or NPM is None, reason=MISSING),
]


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
    with static_server(graphiql_assets) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "chromium") as driver:
        yield driver


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
