"""main.py: settings and their README table, the start-up configuration log, `token` and `serve`."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import jwt
import pytest

import main
from main import ConfigError, read_settings
from resolvers.auth import AuthConfig, Principal, TokenVerifier
from server.serve import YOUNG_COLLECTION_THRESHOLD
from tests.support.app import app_client, make_settings
from tests.support.cli import PROJECT_DIR, cli_environment, run_cli
from tests.support.tokens import JWT_SECRET

DATABASE_URL = "postgresql://u:p@db.example.com/app"
SECRET = "config-test-secret-long-enough-for-hs256"


def test_a_database_url_without_a_jwt_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings({"DATABASE_URL": DATABASE_URL, "DATA_DIR": str(tmp_path)})

    assert "JWT_JWKS_URL" in str(refused.value)
    assert "JWT_SECRET" in str(refused.value)
    # Production configuration never falls back to a development secret.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JWT_SECRET", SECRET),
        ("JWT_JWKS_URL", "https://app.example.com/api/auth/jwks"),
    ],
)
def test_either_jwt_key_is_enough(variable: str, value: str) -> None:
    settings = read_settings({"DATABASE_URL": DATABASE_URL, variable: value})

    assert not settings.embedded
    assert settings.auth.secret == (value if variable == "JWT_SECRET" else None)
    assert settings.auth.jwks_url == (value if variable == "JWT_JWKS_URL" else None)


def test_defaults() -> None:
    settings = read_settings({"DATABASE_URL": DATABASE_URL, "JWT_SECRET": SECRET})

    assert settings.database_url == settings.migration_url == DATABASE_URL
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert (settings.pool_size, settings.pool_timeout) == (20, 5.0)
    assert (settings.connect_timeout, settings.statement_timeout) == (5.0, 5.0)
    assert settings.pooler is None
    assert settings.graphiql is True
    assert settings.log_level == "INFO"
    assert (settings.auth.issuer, settings.auth.audience) == (None, None)


def test_every_variable_is_read() -> None:
    settings = read_settings(
        {
            "DATABASE_URL": DATABASE_URL,
            "DATABASE_MIGRATION_URL": "postgresql://u:p@direct.example.com/app",
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "WORKERS": "4",
            "JWT_SECRET": SECRET,
            "JWT_JWKS_URL": "https://app.example.com/api/auth/jwks",
            "JWT_ISSUER": "https://app.example.com",
            "JWT_AUDIENCE": "https://app.example.com",
            "DB_POOL_SIZE": "3",
            "DB_POOL_TIMEOUT": "2",
            "DB_CONNECT_TIMEOUT": "1.5",
            "DB_STATEMENT_TIMEOUT": "30",
            "DB_POOLER": "true",
            "DATABASE_LISTEN_URL": "postgresql://u:p@direct.example.com/app",
            "GRAPHIQL": "off",
            "LOG_LEVEL": "debug",
            "LIVE_CONNECTIONS_PER_USER": "7",
            "LIVE_SUBSCRIPTIONS_PER_CONNECTION": "3",
            "LIVE_MAX_BACKLOG": "50",
            "LIVE_HEARTBEAT_SECONDS": "2.5",
        }
    )

    assert settings.migration_url == "postgresql://u:p@direct.example.com/app"
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9000, 4)
    assert settings.auth == AuthConfig(
        secret=SECRET,
        jwks_url="https://app.example.com/api/auth/jwks",
        issuer="https://app.example.com",
        audience="https://app.example.com",
    )
    assert (settings.pooler, settings.graphiql, settings.log_level) == (True, False, "DEBUG")
    database = settings.database(DATABASE_URL)
    assert (database.url, database.pool_size, database.pool_timeout_seconds) == (
        DATABASE_URL,
        3,
        2.0,
    )
    assert (database.connect_timeout_seconds, database.statement_timeout_seconds) == (1.5, 30.0)
    assert database.pooler is True
    assert settings.listen_url == "postgresql://u:p@direct.example.com/app"
    live = settings.live
    assert (live.connections_per_user, live.subscriptions_per_connection) == (7, 3)
    assert (live.max_backlog, settings.live_heartbeat_seconds) == (50, 2.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("WORKERS", "2.5"),
        ("DB_POOL_SIZE", "ten"),
        ("DB_POOL_TIMEOUT", "soon"),
        ("DB_CONNECT_TIMEOUT", "5s"),
        ("DB_STATEMENT_TIMEOUT", "fast"),
    ],
)
def test_a_bad_number_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings({"DATABASE_URL": DATABASE_URL, "JWT_SECRET": SECRET, variable: value})

    assert variable in str(refused.value)
    assert repr(value) in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "0"),
        ("PORT", "65536"),
        ("WORKERS", "0"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_TIMEOUT", "0"),
        ("DB_CONNECT_TIMEOUT", "0"),
        ("DB_CONNECT_TIMEOUT", "nan"),
        ("DB_STATEMENT_TIMEOUT", "-5"),
        ("DB_STATEMENT_TIMEOUT", "inf"),
        ("MAX_BODY_BYTES", "0"),
        ("GRAPHQL_MAX_DEPTH", "0"),
        ("GRAPHQL_MAX_ALIASES", "0"),
        ("GRAPHQL_MAX_TOKENS", "-1"),
        ("GRAPHQL_MAX_BYTES", "0"),
        ("RATE_LIMIT_PER_MINUTE", "-1"),
        ("RATE_LIMIT_BURST", "0"),
    ],
)
def test_a_number_out_of_range_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings({"DATABASE_URL": DATABASE_URL, "JWT_SECRET": SECRET, variable: value})

    assert variable in str(refused.value)


def test_the_smallest_allowed_numbers_are_accepted() -> None:
    settings = read_settings(
        {
            "DATABASE_URL": DATABASE_URL,
            "JWT_SECRET": SECRET,
            "PORT": "65535",
            "WORKERS": "1",
            "DB_POOL_SIZE": "1",
            "DB_POOL_TIMEOUT": "0.1",
            "DB_CONNECT_TIMEOUT": "0.1",
            "MAX_BODY_BYTES": "1",
            "GRAPHQL_MAX_DEPTH": "1",
        }
    )

    assert (settings.port, settings.pool_size, settings.pool_timeout) == (65535, 1, 0.1)
    assert (settings.connect_timeout, settings.max_body_bytes) == (0.1, 1)
    assert settings.graphql.max_depth == 1


@pytest.mark.parametrize(("variable", "value"), [("DB_POOLER", "maybe"), ("GRAPHIQL", "2")])
def test_a_bad_flag_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings({"DATABASE_URL": DATABASE_URL, "JWT_SECRET": SECRET, variable: value})

    assert variable in str(refused.value)


@pytest.mark.parametrize(("value", "pooler"), [("auto", None), ("1", True), ("No", False)])
def test_db_pooler(value: str, pooler: bool | None) -> None:
    settings = read_settings(
        {
            "DATABASE_URL": DATABASE_URL,
            "JWT_SECRET": SECRET,
            "DB_POOLER": value,
            "DATABASE_LISTEN_URL": DATABASE_URL,
        }
    )

    assert settings.pooler is pooler


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    settings = read_settings({"DATABASE_URL": "", "PORT": "", "DATA_DIR": str(tmp_path)})

    assert settings.embedded
    assert settings.port == 8000


def test_the_embedded_default_creates_a_private_development_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"

    first = read_settings({"DATA_DIR": str(data_dir)})

    assert first.embedded
    assert first.data_dir == data_dir.resolve()
    secret_file = data_dir / "dev-jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.auth.secret == secret_file.read_text().strip()
    assert len(first.auth.secret) >= 32
    modified = secret_file.stat().st_mtime_ns

    second = read_settings({"DATA_DIR": str(data_dir)})

    assert second.auth.secret == first.auth.secret
    assert secret_file.stat().st_mtime_ns == modified
    # Another data dir is another development setup, with a secret of its own.
    other = read_settings({"DATA_DIR": str(tmp_path / "other")})
    assert other.auth.secret != first.auth.secret


@pytest.mark.slow
def test_workers_starting_at_once_read_one_complete_development_secret(tmp_path: Path) -> None:
    # Each process reads the settings as it starts; none may see a missing or half-written file.
    read_secret = (
        "import sys; from main import read_settings; "
        "print(read_settings({'DATA_DIR': sys.argv[1]}).auth.secret)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", read_secret, str(tmp_path)],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    secrets = {process.communicate(timeout=60)[0].strip() for process in processes}

    assert [process.returncode for process in processes] == [0] * 6
    assert secrets == {(tmp_path / "dev-jwt-secret").read_text().strip()}
    assert len(secrets.pop()) >= 32
    # The private files each process wrote before linking are gone.
    assert [path.name for path in tmp_path.iterdir()] == ["dev-jwt-secret"]


def test_the_embedded_default_uses_a_configured_secret(tmp_path: Path) -> None:
    settings = read_settings({"DATA_DIR": str(tmp_path), "JWT_SECRET": SECRET})

    assert settings.embedded
    assert settings.auth.secret == SECRET
    assert not (tmp_path / "dev-jwt-secret").exists()


def readme_rows() -> list[tuple[str, str]]:
    """(variable, default cell) of each row of the README's configuration table, in order."""
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return [(name, default.strip()) for name, default in rows]


def test_readme_table_lists_every_setting_with_its_default() -> None:
    # Lists, not dicts: a row missing, duplicated or out of the table's order fails.
    expected = [
        (setting.name, "unset" if setting.default is None else f"`{setting.default}`")
        for setting in main.SETTINGS
    ]
    assert readme_rows() == expected


def test_readme_table_has_one_row_per_setting() -> None:
    names = [name for name, _ in readme_rows()]
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    assert duplicated == []
    assert sorted(names) == sorted(setting.name for setting in main.SETTINGS)


def test_effective_configuration_redacts_secrets_and_url_passwords() -> None:
    settings = make_settings(
        "postgresql://app:hunter2@db.example.com/tasks?sslmode=require",
        USER_HASH_KEY="pepper-value",
        DATABASE_MIGRATION_URL="postgresql://owner:s3cret@db.example.com/tasks",
    )
    logged = json.dumps(main.effective_configuration(settings))
    for secret in ("hunter2", "s3cret", "pepper-value", JWT_SECRET):
        assert secret not in logged
    configuration = main.effective_configuration(settings)
    assert configuration["database_url"] == (
        "postgresql://app:<redacted>@db.example.com/tasks?sslmode=require"
    )
    assert configuration["auth"]["secret"] == "<redacted>"
    assert configuration["pool_size"] == 20


def test_log_format_is_json_in_production_and_text_in_development(tmp_path: Path) -> None:
    assert make_settings("postgresql://h/db").log_format == "json"
    assert main.read_settings({"DATA_DIR": str(tmp_path)}).log_format == "text"
    assert make_settings("postgresql://h/db", LOG_FORMAT="text").log_format == "text"
    with pytest.raises(main.ConfigError, match="LOG_FORMAT"):
        make_settings("postgresql://h/db", LOG_FORMAT="xml")


async def test_start_up_logs_the_effective_configuration(
    clean_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql")
    async with app_client(make_settings(clean_database)):
        pass
    [record] = [r for r in caplog.records if r.getMessage().startswith("starting")]
    assert record.__dict__["fields"]["configuration"]["auth"]["secret"] == "<redacted>"
    assert JWT_SECRET not in record.getMessage()


async def test_a_started_app_freezes_start_up_objects_and_collects_young_ones_less_often(
    clean_database: str,
) -> None:
    async with app_client(make_settings(clean_database)):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD


async def _verify(token: str, config: AuthConfig) -> Principal:
    verifier = TokenVerifier(config)
    try:
        return await verifier.verify(token)
    finally:
        await verifier.aclose()


@pytest.mark.slow
async def test_token_command_prints_a_token_that_verifies() -> None:
    env = cli_environment(DATABASE_URL=DATABASE_URL, JWT_SECRET=SECRET)

    status, stdout, stderr = await run_cli("token", "alice", env=env)

    assert status == 0, stderr
    token = stdout.strip()
    assert await _verify(token, AuthConfig(secret=SECRET)) == Principal("alice")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 86400
    assert abs(claims["iat"] - time.time()) < 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.slow
async def test_token_command_honours_ttl_issuer_and_audience() -> None:
    origin = "https://app.example.com"
    env = cli_environment(
        DATABASE_URL=DATABASE_URL, JWT_SECRET=SECRET, JWT_ISSUER=origin, JWT_AUDIENCE=origin
    )

    status, stdout, stderr = await run_cli("token", "bob", "--ttl", "60", env=env)

    assert status == 0, stderr
    token = stdout.strip()
    config = AuthConfig(secret=SECRET, issuer=origin, audience=origin)
    assert await _verify(token, config) == Principal("bob")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=origin)
    assert (claims["iss"], claims["aud"], claims["exp"] - claims["iat"]) == (origin, origin, 60)


@pytest.mark.slow
async def test_token_command_uses_the_development_secret(tmp_path: Path) -> None:
    status, stdout, stderr = await run_cli(
        "token", "dev-user", env=cli_environment(DATA_DIR=str(tmp_path))
    )

    assert status == 0, stderr
    secret = (tmp_path / "dev-jwt-secret").read_text().strip()
    assert await _verify(stdout.strip(), AuthConfig(secret=secret)) == Principal("dev-user")


@pytest.mark.slow
async def test_token_command_needs_a_shared_secret() -> None:
    env = cli_environment(
        DATABASE_URL=DATABASE_URL, JWT_JWKS_URL="https://app.example.com/api/auth/jwks"
    )

    status, stdout, stderr = await run_cli("token", "alice", env=env)

    assert status == 2
    assert stdout == ""
    assert "JWT_SECRET" in stderr


@pytest.mark.slow
async def test_serve_refuses_to_start_without_a_jwt_key(tmp_path: Path) -> None:
    env = cli_environment(DATABASE_URL=DATABASE_URL, DATA_DIR=str(tmp_path), PORT="1")

    status, stdout, stderr = await run_cli("serve", env=env)

    assert status == 2
    assert stdout == ""
    assert stderr.startswith("configuration error: ")
    assert "JWT_JWKS_URL" in stderr
    assert "JWT_SECRET" in stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "env",
    [
        {"DB_POOLER": "true"},
        {"DATABASE_URL": "postgresql://u:p@ep-x-pooler.eu.aws.neon.tech/app"},
    ],
)
def test_a_pooled_database_url_without_a_listen_url_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings({"DATABASE_URL": DATABASE_URL, "JWT_SECRET": SECRET, **env})

    assert "DATABASE_LISTEN_URL" in str(refused.value)


def test_a_pooled_listen_url_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings(
            {
                "DATABASE_URL": DATABASE_URL,
                "JWT_SECRET": SECRET,
                "DATABASE_LISTEN_URL": "postgresql://u:p@ep-x-pooler.eu.aws.neon.tech/app",
            }
        )

    assert "DATABASE_LISTEN_URL" in str(refused.value)


def test_a_pooled_database_url_with_a_direct_listen_url_is_accepted() -> None:
    direct = "postgresql://u:p@ep-x.eu.aws.neon.tech/app"
    settings = read_settings(
        {
            "DATABASE_URL": "postgresql://u:p@ep-x-pooler.eu.aws.neon.tech/app",
            "JWT_SECRET": SECRET,
            "DATABASE_LISTEN_URL": direct,
        }
    )

    assert settings.listen_url == direct


def test_a_cors_origin_that_is_not_an_origin_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings(
            {
                "DATABASE_URL": DATABASE_URL,
                "JWT_SECRET": SECRET,
                "CORS_ORIGINS": "https://app.example.com/path",
            }
        )

    assert "CORS_ORIGINS" in str(refused.value)
