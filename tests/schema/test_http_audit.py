"""The GraphQL-over-HTTP audit of graphql-http (the spec's reference suite) against a real server.

The audit runs in node against the app on a real uvicorn; its package is installed once into
.data/npm (ignored by git). Two of its warnings are about rules the spec's 2025 watershed
changed: a request accepting `*/*`, or without Accept, may now be answered with
application/graphql-response+json, which this server does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import make_settings
from tests.support.live import live_server

NODE = shutil.which("node")
NPM = shutil.which("npm")
PACKAGES = ("graphql-http@1.23.1", "graphql@16.15.0")
CACHE = Path(__file__).resolve().parent.parent / ".data" / "npm" / "graphql-http-audit"
# 47DE: SHOULD use application/json for `Accept: */*`; 80D8: the same without Accept.
SUPERSEDED_WARNINGS = {"47DE", "80D8"}

AUDIT = """
import { auditServer } from 'graphql-http';
const results = await auditServer({ url: process.argv[1] });
const summary = results.map(({ id, name, status, reason }) => ({ id, name, status, reason }));
console.log(JSON.stringify(summary));
"""

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="the GraphQL-over-HTTP audit needs node and npm (apt-get install npm; .ci/run does)",
)


@pytest.fixture(scope="session")
def audit_package() -> Path:
    """A directory where node finds graphql-http; npm installs it on first use."""
    assert NPM is not None
    marker = CACHE / "installed"
    installed = marker.read_text() if marker.exists() else ""
    if installed != " ".join(PACKAGES):
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                NPM,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(CACHE),
                *PACKAGES,
            ],
            capture_output=True,
            check=True,
            timeout=300,
        )
        marker.write_text(" ".join(PACKAGES))
    return CACHE


def run_audit(package: Path, url: str) -> list[dict[str, Any]]:
    assert NODE is not None
    finished = subprocess.run(
        [NODE, "--input-type=module", "-e", AUDIT, url],
        cwd=package,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    results: list[dict[str, Any]] = json.loads(finished.stdout)
    return results


@pytest.mark.slow
def test_the_audit_finds_nothing_but_the_superseded_warnings(
    audit_package: Path, database_url: str
) -> None:
    with live_server(make_settings(database_url)) as base_url:
        results = run_audit(audit_package, f"{base_url}/graphql")
        # The audit's requests carry no token and read only __typename and __type, which
        # anonymous callers may; reading data still takes a token.
        anonymous = httpx.post(f"{base_url}/graphql", json={"query": "{ tasks { totalCount } }"})

    assert len(results) > 50, results
    others = [r for r in results if r["status"] != "ok" and r["id"] not in SUPERSEDED_WARNINGS]
    assert others == [], json.dumps(others, indent=2)
    superseded = [r for r in results if r["id"] in SUPERSEDED_WARNINGS]
    assert {r["status"] for r in superseded} <= {"ok", "warn"}, superseded
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
