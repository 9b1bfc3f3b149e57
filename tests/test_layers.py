"""The direction of imports is a contract that `make lint` enforces, not prose."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import PROJECT_DIR

pytestmark = pytest.mark.slow

PACKAGES = ("schema", "rest_compat", "server", "resolvers", "db")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_of_the_code(destination: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_DIR / package,
            destination / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(PROJECT_DIR / "pyproject.toml", destination)
    shutil.copy(PROJECT_DIR / "main.py", destination)
    return destination


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_its_contracts(tmp_path: Path) -> None:
    result = _lint_imports(_copy_of_the_code(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import"),
    [
        ("resolvers/tasks.py", "from schema import types"),  # the domain reaching up
        ("db/tasks.py", "from resolvers import domain"),  # storage reaching up
        ("schema/types.py", "from rest_compat import bodies"),  # one door into the other
        ("rest_compat/routes.py", "from server import metrics"),  # a door into the HTTP layer
        ("schema/query.py", "from db import tasks"),  # a door skipping the domain
        ("resolvers/context.py", "import starlette"),  # the domain importing a web framework
    ],
)
def test_an_import_against_the_direction_breaks_the_lint(
    tmp_path: Path, module: str, wrong_import: str
) -> None:
    tree = _copy_of_the_code(tmp_path)
    path = tree / module
    source = path.read_text()
    # After the module's own `from __future__` line, where an import is legal.
    marker = "from __future__ import annotations\n"
    assert marker in source
    path.write_text(source.replace(marker, marker + wrong_import + "\n", 1))
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_nothing_imports_the_composition_root() -> None:
    """main.py sits on top: import-linter takes only packages as roots, so this checks it."""
    importers = []
    for package in PACKAGES:
        for path in (PROJECT_DIR / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                if any(name == "main" or name.startswith("main.") for name in names):
                    importers.append(str(path.relative_to(PROJECT_DIR)))
    assert importers == []
