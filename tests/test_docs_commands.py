"""The shell commands in README.md and docs/*.md run as pasted into a fresh shell after `make run`.

A fresh shell has no virtual environment activated, so `python main.py ...` or a bare
`taskql` fails there; commands must name `.venv/bin/...` (made by `make`), a Makefile target,
a program the system has, or a virtual environment the same page created first
(`python3 -m venv /opt/taskql`, then `/opt/taskql/bin/taskql`). Variables a block uses must
be set in that block, since a reader pastes one block at a time.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest

import main
from server.devmode import development_secret, token_command
from tests.support.cli import PROJECT_DIR, cli_environment

ROOT = PROJECT_DIR
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"sh", "bash", "shell"}
SHELL_BUILTINS = {"cd", "export", "set", "unset", "source", ".", "echo", "test", "["}
# Commands of the production host that docs/deploy.md addresses, which a developer's machine
# (a Mac, a container) may lack.
PRODUCTION_HOST_TOOLS = {"systemctl", "journalctl", "useradd"}
STANDARD_VARIABLES = {"HOME", "PATH", "PWD", "USER"}
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is and its text."""

    path: Path
    line: int
    text: str


@dataclass
class Project:
    """What a documented command may rely on in this checkout."""

    make_targets: set[str]
    console_scripts: set[str]
    cli_commands: set[str]
    # Virtual environments the page being checked created, in reading order.
    created_venvs: set[Path] = field(default_factory=set)


def shell_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"\s*```(\S*)\s*$", lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        if fence.group(1) in SHELL_FENCES:
            blocks.append(Block(path, index + 2, "\n".join(lines[index + 1 : end])))
        index = end + 1
    return blocks


def commands(text: str) -> list[list[str]]:
    """The simple commands of a block as words, `$(...)` substitutions included as commands
    of their own, with line continuations joined and comments dropped."""
    found: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in _SEPARATORS:
                found.append(current)
                current = []
            else:
                current.append(token)
        found.append(current)
    return [words for words in found if words]


def problems_of_block(block: Block, project: Project) -> list[str]:
    problems: list[str] = []
    unquoted = re.sub(r"'[^']*'", "''", block.text)
    for match in _REFERENCE.finditer(unquoted):
        name = match.group(1)
        if name not in STANDARD_VARIABLES and f"{name}=" not in unquoted[: match.start()]:
            problems.append(f"${name} is used but not set in this block")
    try:
        block_commands = commands(block.text)
    except ValueError as error:
        return [*problems, f"cannot be read as shell: {error}"]
    for words in block_commands:
        problem = problem_of_command(words, project)
        if problem is not None:
            problems.append(f"`{shlex.join(words)}`: {problem}")
    return problems


def problem_of_command(words: list[str], project: Project) -> str | None:
    """Why `words` would fail in a fresh shell in the checkout, or None."""
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return None
    program, arguments = words[0], words[1:]
    if program in SHELL_BUILTINS or program in PRODUCTION_HOST_TOOLS:
        return None
    if program == "make":
        targets = [a for a in arguments if not a.startswith("-") and "=" not in a]
        missing = [t for t in targets if t not in project.make_targets]
        return f"no Makefile target {', '.join(missing)}" if missing else None
    if program == "python3" and arguments[:2] == ["-m", "venv"] and len(arguments) > 2:
        project.created_venvs.add(Path(arguments[2]))
        return None
    if "/" in program:
        return _problem_of_path(Path(program), arguments, project)
    if program in project.console_scripts or (ROOT / ".venv" / "bin" / program).exists():
        return f"only on PATH with a virtual environment activated: write .venv/bin/{program}"
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return None if shutil.which(program, path=path) else f"{program} is not installed"


def _problem_of_path(program: Path, arguments: list[str], project: Project) -> str | None:
    if program.is_absolute():
        created = program.parent.parent in project.created_venvs and program.parent.name == "bin"
        known = program.name in {"python", "python3", "pip"} | project.console_scripts
        if not ((created and known) or os.access(program, os.X_OK)):
            return f"{program} exists only once the page has created its virtual environment"
    elif not os.access(ROOT / program, os.X_OK):
        return f"{program} does not exist after `make run`"
    if program.name in project.console_scripts:
        command = next((a for a in arguments if not a.startswith("-")), None)
        if command not in project.cli_commands:
            return f"{program.name} has no command {command!r} ({', '.join(project.cli_commands)})"
    return None


@pytest.fixture(scope="module")
def project() -> Project:
    with (ROOT / "pyproject.toml").open("rb") as file:
        scripts = set(tomllib.load(file)["project"]["scripts"])
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.\-/$()]+):(?!=)", makefile, re.MULTILINE))
    usage = subprocess.run(
        [sys.executable, "main.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [choices] = re.findall(r"\{([a-z,]+)\}", usage)[:1]
    return Project(targets, scripts, set(choices.split(",")))


@pytest.mark.slow
def test_every_documented_command_runs_as_pasted(project: Project) -> None:
    problems: list[str] = []
    checked = 0
    for path in DOCUMENTS:
        project.created_venvs.clear()
        for block in shell_blocks(path):
            checked += len(commands(block.text))
            where = f"{path.relative_to(ROOT)}:{block.line}"
            problems += [f"{where}: {problem}" for problem in problems_of_block(block, project)]
    assert not problems, "\n".join(problems)
    # The documents hold about 40 commands; far fewer means the blocks were not found.
    assert checked >= 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python main.py token alice", "write .venv/bin/python"),
        ("TOKEN=$(python main.py token alice)", "write .venv/bin/python"),
        ("taskql serve", "write .venv/bin/taskql"),
        ("python3 main.py serve", "write .venv/bin/python3"),
        ("make -s no-such-target USER_ID=alice", "no Makefile target no-such-target"),
        (".venv/bin/no-such-tool", "does not exist"),
        (".venv/bin/taskql no-such-command", "has no command 'no-such-command'"),
        ("/opt/elsewhere/bin/taskql serve", "once the page has created"),
        ('curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/', "$TOKEN is used"),
        ("no-such-program-for-sure --version", "is not installed"),
        ("make run && 'unclosed", "cannot be read"),
    ],
)
def test_commands_that_fail_in_a_fresh_shell_are_refused(
    project: Project, text: str, expected: str
) -> None:
    project.created_venvs.clear()
    problems = problems_of_block(Block(ROOT / "README.md", 1, text), project)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        "make run    # serve on http://127.0.0.1:8000",
        'TOKEN=$(make -s token USER_ID=alice)\ncurl -s -H "Authorization: Bearer $TOKEN" x',
        "TOKEN=$(.venv/bin/taskql token alice)\ncurl -s x -H 'If-Match: \"$2\"'",
        "python3 -m venv /opt/taskql\n/opt/taskql/bin/pip check\n/opt/taskql/bin/taskql migrate",
        "DATABASE_MIGRATION_URL='postgresql://h/db?sslmode=require' \\\n  .venv/bin/taskql migrate",
        "systemctl start taskql-migrate.service && systemctl restart taskql.service",
    ],
)
def test_commands_that_work_in_a_fresh_shell_pass(project: Project, text: str) -> None:
    project.created_venvs.clear()
    assert problems_of_block(Block(ROOT / "README.md", 1, text), project) == []


@pytest.mark.slow
def test_the_development_banners_token_command_runs_as_pasted(tmp_path: Path) -> None:
    # `make run` prints this command for a new token; a fresh shell in the checkout runs it.
    data_dir = tmp_path / "data"
    command = token_command(main.DEV_USER_ID)
    env = cli_environment(DATA_DIR=str(data_dir))
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p != str(ROOT / ".venv" / "bin")
    )
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    secret = development_secret(data_dir)
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == main.DEV_USER_ID
