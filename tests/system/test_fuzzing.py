"""schemathesis against a live server: the REST routes from /api/openapi.json, and /graphql.

It runs as its command line, `st run`, with every default check: its pytest plugin does not
work with pytest 9, and the command also runs its coverage phase (boundaries, wrong types).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app import make_settings
from tests.support.cli import PROJECT_DIR
from tests.support.live import live_server
from tests.support.tokens import hs256_token

pytestmark = pytest.mark.slow

USER = "fuzz-user"
ST = Path(sys.executable).with_name("st")
# Enough to meet every branch of these small operations, few enough to stay fast.
MAX_EXAMPLES = 25
# The REST status codes a request that the schema allows may still get for a reason the schema
# cannot state: someone else's path (403), a task that is not there (404), a stale If-Match (412).
# A bulk change must name its tasks: with neither a filter nor all=true (or with both), or with
# more matching tasks than BULK_MAX_TASKS, it is a 422, a rule across parameters and data that
# OpenAPI cannot state either (the operations' descriptions say it).
ACCEPTED_FOR_VALID_DATA = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "412", "429", "5xx"]

[[operations]]
include-operation-id = ["setTasksCompletion", "deleteTasks"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429", "5xx"]
"""


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(make_settings(database_url)) as url:
        yield url


def run_schemathesis(location: str, directory: Path, config: str = "") -> None:
    """`st run` with every default check as `USER`, configured by the `config` TOML; fails on
    any finding, with schemathesis' report (and curl commands to reproduce) as the message."""
    config_file = directory / "schemathesis.toml"
    config_file.write_text('[generation]\ndatabase = "none"\n' + config)
    command = [
        str(ST),
        "--no-color",
        f"--config-file={config_file}",
        "run",
        location,
        f"--header=Authorization: Bearer {hs256_token(USER)}",
        f"--max-examples={MAX_EXAMPLES}",
        # One worker: Python 3.11's parser is not thread-safe, and schemathesis parses
        # hypothesis' lambdas while it generates.
        "--workers=1",
        # An event stream never ends; tests/system/test_live_rest.py keeps it to its document.
        "--exclude-operation-id=streamTaskEvents",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(PROJECT_DIR / "tests" / "support" / "schemathesis_hooks.py"),
        "PYTHONPATH": str(PROJECT_DIR),
    }
    result = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rest_routes_keep_to_their_openapi_document(base_url: str, tmp_path: Path) -> None:
    run_schemathesis(
        f"{base_url}/api/openapi.json",
        tmp_path,
        # The token's user; otherwise schemathesis would meet little but the 403 of other users.
        f'[parameters]\n"path.user_id" = "{USER}"\n' + ACCEPTED_FOR_VALID_DATA,
    )


def test_rest_routes_refuse_other_users_as_documented(base_url: str, tmp_path: Path) -> None:
    # Generated user ids: all but USER get the 403 the document declares, before any query.
    run_schemathesis(
        f"{base_url}/api/openapi.json",
        tmp_path,
        ACCEPTED_FOR_VALID_DATA,
    )


def test_graphql_keeps_to_its_schema(base_url: str, tmp_path: Path) -> None:
    # GraphQL types cannot state our argument rules (first <= 100, first and last exclusive,
    # cursors from this API), so a query the schema allows may rightly get BAD_USER_INPUT. Every
    # other default check stays on, not_a_server_error among them.
    run_schemathesis(
        f"{base_url}/graphql",
        tmp_path,
        "[checks.positive_data_acceptance]\nenabled = false\n",
    )
