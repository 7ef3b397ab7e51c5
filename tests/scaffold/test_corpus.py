"""`sidecar init` on real compose projects written by others (tests/fixtures/real/).

Each folder holds the project's data files (`project/`), where they come from (`SOURCE`) and the
bridge.yaml init must write for it (`bridge.yaml`, reviewed by hand). Both readers (the compose
CLI and our own) must write exactly that file, and it must pass `validate --strict` against the
project. No container runs: the programs come from what init knows about images and Dockerfiles.
A project whose files need a newer compose than this machine's (`newer_compose` in SOURCE) takes
the reader's fallback in CLI mode: a one-line reason, then the same reviewed file. A project
used with explicit compose files (`compose` in SOURCE, relative to where init runs) gets them as
`--compose` flags, in init and in validate alike.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from sidecar_gen.config import load_bridge
from sidecar_gen.scaffold.proposal import run_init
from sidecar_gen.validate.check import CheckOptions, run_check

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "real"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "SOURCE").is_file())


def _source(name: str) -> dict[str, Any]:
    data = YAML(typ="safe").load((CORPUS / name / "SOURCE").read_text())
    assert isinstance(data, dict)
    return data


def _cli_is_older(version: str) -> bool:
    """True when the installed compose CLI is older than `version` (e.g. "2.24")."""
    out = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True,
                         text=True, check=False).stdout.strip().lstrip("v")
    have = tuple(int(p) for p in re.findall(r"\d+", out)[:2])
    return bool(have) and have < tuple(int(p) for p in version.split("."))


def _checkout(name: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project under its own name, and the environment its user works in."""
    source = _source(name)
    root = tmp_path / name
    shutil.copytree(CORPUS / name / "project", root)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"),
           **{str(k): str(v) for k, v in (source.get("environment") or {}).items()}}
    return root / str(source.get("directory", ".")), env


def _compose_files(name: str, directory: Path) -> tuple[Path, ...]:
    """The `--compose` flags a project is used with (absolute: the test does not chdir)."""
    return tuple(directory / str(f) for f in _source(name).get("compose") or ())


def test_the_corpus_is_big_and_sourced() -> None:
    assert len(CASES) >= 45
    for name in CASES:
        source = _source(name)
        for entry in source["files"]:
            assert {"repository", "commit", "path", "copied_to"} <= set(entry), name
            assert len(str(entry["commit"])) == 40, name
            assert (CORPUS / name / "project" / str(entry["copied_to"])).is_file(), name
        for placeholder in source.get("placeholders") or []:
            assert (CORPUS / name / "project" / placeholder).stat().st_size == 0, name
        for folder in source.get("placeholder_dirs") or []:
            assert (CORPUS / name / "project" / folder / ".keep").stat().st_size == 0, name
        assert (CORPUS / name / "bridge.yaml").is_file(), name


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("reader", ["own", "cli"])
def test_init_writes_the_reviewed_bridge(name: str, reader: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         request: pytest.FixtureRequest) -> None:
    if reader == "cli":
        request.getfixturevalue("compose_cli")
    directory, env = _checkout(name, tmp_path)
    files = _compose_files(name, directory)
    result = run_init(directory, files, prefer_cli=reader == "cli", probe=False, environ=env)
    project = result.proposal.project
    assert project is not None
    newer = _source(name).get("newer_compose")
    if reader == "cli" and not project.via_cli and newer and _cli_is_older(newer):
        # A file this machine's compose CLI is too old for: init says why in one line and
        # reads it itself, which must still write the reviewed file.
        assert project.cli_error and "\n" not in project.cli_error
    else:
        assert project.via_cli is (reader == "cli"), project.cli_error
    written = directory / ".sidecar" / "bridge.yaml"
    assert written.read_text() == (CORPUS / name / "bridge.yaml").read_text()
    # validate reads the project in the user's shell, as they would run it.
    for key in list(os.environ):
        if key.startswith("COMPOSE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    check = run_check(CheckOptions(files=[written], compose=files, strict=True))
    assert [f for f in check.report.findings if str(f.severity) != "note"] == []
    assert check.exit_code == 0


@pytest.mark.parametrize("name", CASES)
def test_both_readers_propose_the_same_routes(name: str, tmp_path: Path,
                                              compose_cli: list[str]) -> None:
    found = {}
    for reader in ("cli", "own"):
        directory, env = _checkout(name, tmp_path / reader)
        run_init(directory, _compose_files(name, directory), prefer_cli=reader == "cli",
                 probe=False, environ=env)
        bridge = load_bridge(directory / ".sidecar" / "bridge.yaml")
        found[reader] = {n: r.to_record() for n, r in bridge.commands.items()}
    assert found["cli"] == found["own"]
    assert found["own"], "init routed nothing"
