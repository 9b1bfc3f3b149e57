"""The settings: the README's table matches them, start-up logs them without secrets."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

import main
from tests.support.app import app_client, make_settings
from tests.support.cli import PROJECT_DIR
from tests.support.tokens import JWT_SECRET


def readme_table() -> dict[str, str]:
    """Variable name -> default cell of the README's configuration table."""
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_readme_table_lists_every_setting_with_its_default() -> None:
    expected = {
        setting.name: "unset" if setting.default is None else f"`{setting.default}`"
        for setting in main.SETTINGS
    }
    assert readme_table() == expected


def test_readme_table_has_one_row_per_setting() -> None:
    assert len(readme_table()) == len(main.SETTINGS)


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
