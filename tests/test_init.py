"""`sidecar init`: proposals from compose projects, idempotency, safety, and the examples."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sidecar_gen.bridgecheck import validate_file
from sidecar_gen.compose import interpolate, normalize_project_name, read_compose_yaml
from sidecar_gen.config import load_bridge
from sidecar_gen.fileplan import Status as FileStatus
from sidecar_gen.scaffold import InitResult, run_init
from sidecar_gen.toolchains import commands_for

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.parent for p in REPO.glob("examples/*/compose.yaml"))


def _init_example(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  prefer_cli: bool) -> InitResult:
    for name in ("PHP_IMAGE", "DB_IMAGE", "NODE_IMAGE", "REDIS_IMAGE", "GO_IMAGE",
                 "POSTGRES_IMAGE", "COMPOSE_PROJECT_NAME"):
        monkeypatch.delenv(name, raising=False)
    copy = tmp_path / example.name
    shutil.copytree(example, copy, ignore=shutil.ignore_patterns(".sidecar"))
    result = run_init(copy, prefer_cli=prefer_cli)
    assert [f.status for f in result.files] == [FileStatus.CREATED, FileStatus.CREATED]
    for name in ("bridge.yaml", "allowed-domains.txt"):
        written = (copy / ".sidecar" / name).read_text()
        assert written == (example / ".sidecar" / name).read_text(), name
    assert validate_file(copy / ".sidecar" / "bridge.yaml") == []
    return result


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_hold_what_init_writes(example: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = _init_example(example, tmp_path, monkeypatch, prefer_cli=False)
    assert result.proposal.project is not None and not result.proposal.project.via_cli


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_compose_cli_proposes_the_same_file(example: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            compose_cli: list[str]) -> None:
    result = _init_example(example, tmp_path, monkeypatch, prefer_cli=True)
    assert result.proposal.project is not None and result.proposal.project.via_cli


def test_laravel_proposal() -> None:
    project = read_compose_yaml(REPO / "examples" / "laravel" / "compose.yaml")
    bridge = load_bridge(REPO / "examples" / "laravel" / ".sidecar" / "bridge.yaml")
    assert project.name == "laravel"
    assert bridge.containers == {"db": "laravel-db-1", "php": "laravel-php-1"}
    php = bridge.commands["php"]
    assert (php.container, php.argv, php.workdir) == ("php", ("php",), "/var/www/html")
    assert php.paths == (("/workspace", "/var/www/html"),)
    assert set(bridge.commands) == {"php", "composer", "mysql"}
    assert bridge.stack.project == "laravel"


def test_container_name_and_subdirectory_mounts(tmp_path: Path) -> None:
    (tmp_path / "frontend").mkdir()
    (tmp_path / "compose.yml").write_text(
        "name: My_Shop\nservices:\n"
        "  node:\n    image: node:20\n    container_name: shop-node\n"
        "    volumes: ['./frontend:/app', 'cache:/root/.npm', '/etc/hosts:/x:ro']\n"
        "  worker:\n    build: .\n")
    result = run_init(tmp_path, prefer_cli=False)
    bridge = load_bridge(tmp_path / ".sidecar" / "bridge.yaml")
    assert result.proposal.project is not None
    assert result.proposal.project.name == "my_shop"
    assert bridge.containers == {"node": "shop-node"}
    assert bridge.commands["npm"].paths == (("/workspace/frontend", "/app"),)
    assert bridge.commands["npm"].workdir == "/app"
    text = (tmp_path / ".sidecar" / "bridge.yaml").read_text()
    assert "# worker: my_shop-worker-1" in text


def test_no_compose_file_gives_a_valid_starter(tmp_path: Path) -> None:
    result = run_init(tmp_path)
    assert result.proposal.project is None
    bridge_path = tmp_path / ".sidecar" / "bridge.yaml"
    text = bridge_path.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "No compose file was found" in text
    assert validate_file(bridge_path) == []


def test_idempotent_and_safe(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  php:\n    image: php\n")
    run_init(tmp_path, prefer_cli=False)
    bridge = tmp_path / ".sidecar" / "bridge.yaml"
    before = bridge.stat().st_mtime_ns
    again = run_init(tmp_path, prefer_cli=False)
    assert [f.status for f in again.files] == [FileStatus.OK, FileStatus.OK]
    assert bridge.stat().st_mtime_ns == before
    bridge.write_text("mine\n")
    kept = run_init(tmp_path, prefer_cli=False)
    assert kept.files[0].status is FileStatus.SKIPPED
    assert bridge.read_text() == "mine\n"
    forced = run_init(tmp_path, prefer_cli=False, force=True)
    assert forced.files[0].status is FileStatus.CHANGED
    leftovers = [p.name for p in bridge.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_atomic_write_keeps_mode(tmp_path: Path) -> None:
    from sidecar_gen.fsutil import write_atomic

    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o600)
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600


def test_interpolation() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A}-$A-${B:-dflt}-${EMPTY:-e}-${EMPTY-f}-$$A", env) == "1-1-dflt-e--$A"


@pytest.mark.parametrize(("raw", "expected"), [("My Project", "myproject"), ("_x-Y.z", "x-yz"),
                                                ("ünï", "n")])
def test_project_name_normalization(raw: str, expected: str) -> None:
    assert normalize_project_name(raw) == expected


@pytest.mark.parametrize(("image", "service", "expected"), [
    ("php:8.3-fpm", "app", ("php", "composer")),
    ("docker.io/library/golang:1.23@sha256:abc", "api", ("go", "gofmt")),
    ("bitnami/postgresql:16", "db", ("psql",)),
    ("mariadb:11", "db", ("mysql",)),
    ("gotenberg/gotenberg:8", "pdf", ()),
    ("sidecar-test/busybox:latest", "node", ("node", "npm", "npx")),
    (None, "python", ("python", "pip", "pytest")),
])
def test_commands_for_images(image: str | None, service: str,
                             expected: tuple[str, ...]) -> None:
    assert commands_for(image, service) == expected
