"""The daily `up` reuses the last verified resolution (`trust.resolved`) only while nothing it
depends on changed: every kind of input, changed, is a miss (compose resolves again) and a
change of the model is refused as before; what compose cannot read is no reason to resolve."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust import resolved
from sidecar_gen.trust.actions import Check, approve, check_project
from sidecar_gen.trust.record import ApprovalStore, FileState


def up_check(target: ComposeTarget, store: ApprovalStore) -> Check:
    """What `sidecar up` checks (with the cache)."""
    return check_project(target, store, render_notes=False, reuse=True)


@pytest.fixture
def warm(target: ComposeTarget, store: ApprovalStore) -> ComposeTarget:
    """An approved project whose last `up` check left its resolution in the cache."""
    approve(check_project(target, store, render_notes=False))
    first = up_check(target, store)
    assert not first.snapshot.cached and not first.comparison.changed
    second = up_check(target, store)
    assert second.snapshot.cached and not second.comparison.changed
    assert second.snapshot.resolved.text == first.snapshot.resolved.text
    return target


def with_env(target: ComposeTarget, **changes: str | None) -> ComposeTarget:
    env = target.environ()
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return ComposeTarget(target.directory, env=env)


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# Each change: (what it does to the project, whether compose's model changes with it).
CHANGES: dict[str, tuple[Callable[[Path], None], bool]] = {
    "compose file": (lambda root: (root / "compose.yaml").write_text(
        (root / "compose.yaml").read_text().replace(
            '    volumes: ["./:/app"]\n', '    volumes: ["./:/app"]\n    labels: {added: "1"}\n')),
        True),
    "compose comment": (lambda root: _append(root / "compose.yaml", "# a comment\n"), False),
    "dotenv secret": (lambda root: (root / ".env").write_text("DB_PASSWORD=rotated\n"), True),
    "new override file": (lambda root: (root / "compose.override.yaml").write_text(
        "services:\n  app:\n    privileged: true\n"), True),
    "generated stack": (lambda root: _append(root / ".sidecar" / "compose.yml",
                                             "# edited\n"), False),
    "bridge.yaml": (lambda root: _append(root / ".sidecar" / "bridge.yaml", "# edited\n"), False),
    "allowlist": (lambda root: _append(root / ".sidecar" / "allowed-domains.txt",
                                       "evil.example\n"), False),
    "git hook": (lambda root: (root / ".git" / "hooks").mkdir(parents=True) or
                 (root / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\n"), False),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_changed_input_is_a_miss(warm: ComposeTarget, store: ApprovalStore,
                                       change: str) -> None:
    edit, model_changes = CHANGES[change]
    if change == "git hook":
        (warm.directory / ".git").mkdir()
        (warm.directory / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    edit(warm.directory)
    check = up_check(warm, store)
    assert not check.snapshot.cached
    assert check.comparison.model_changed is model_changes
    # Refused exactly as without the cache: the model, the policy's bytes or the git files.
    assert check.comparison.changed is (change not in ("compose comment", "generated stack"))
    assert resolved.load(store, warm.directory) is None or not check.comparison.changed


@pytest.mark.parametrize(("name", "value"), [
    ("SHELL_TOKEN", "another-secret"),  # passed through by `environment:`
    ("DB_PASSWORD", "from-the-shell"),  # interpolated (the shell wins over .env)
    ("COMPOSE_PROFILES", "debug"),  # compose's own settings
    ("COMPOSE_PROJECT_NAME", "other"),
    ("DOCKER_HOST", "unix:///elsewhere.sock"),
    ("PATH", "/opt/other/bin:/usr/bin:/bin"),
])
def test_a_variable_compose_reads_is_a_miss(warm: ComposeTarget, store: ApprovalStore,
                                           name: str, value: str) -> None:
    check = up_check(with_env(warm, **{name: value}), store)
    assert not check.snapshot.cached
    if name in ("SHELL_TOKEN", "DB_PASSWORD", "COMPOSE_PROJECT_NAME"):
        assert check.comparison.model_changed


def test_a_variable_compose_cannot_read_is_a_hit(warm: ComposeTarget,
                                                 store: ApprovalStore) -> None:
    check = up_check(with_env(warm, OLDPWD="/somewhere", TERM_SESSION_ID="w0t1p0"), store)
    assert check.snapshot.cached and not check.comparison.changed


def test_a_new_approval_is_a_miss(warm: ComposeTarget, store: ApprovalStore) -> None:
    import json

    # `sidecar trust` again, later: the record is another one, even of the same project.
    path = store.directory(warm.directory) / "approval.json"
    record = json.loads(path.read_text())
    record["approved_at"] = "2030-01-01T00:00:00Z"
    path.write_text(json.dumps(record))
    assert not up_check(warm, store).snapshot.cached


def test_a_link_swapped_under_a_bind_is_refused_on_a_hit(warm: ComposeTarget,
                                                        store: ApprovalStore,
                                                        tmp_path: Path) -> None:
    # No input file changes, so the cached model is used: the real paths are read now.
    root = warm.directory
    _append(root / "compose.yaml", "")  # unchanged bytes
    (root / "compose.override.yaml").write_text(
        "services:\n  app:\n    volumes: ['./data:/data']\n")
    (root / "data").mkdir()
    approve(check_project(warm, store, render_notes=False))
    up_check(warm, store)
    assert up_check(warm, store).snapshot.cached
    (root / "data").rmdir()
    (tmp_path / "home").mkdir()
    (root / "data").symlink_to(tmp_path / "home")
    check = up_check(warm, store)
    assert check.snapshot.cached  # the files are the same...
    assert check.comparison.model_changed  # ...the mount is not: refused
    assert any("x-sidecar-resolved" in line for line in check.comparison.model_lines[1])


def test_an_env_file_named_by_the_model_is_an_input(target: ComposeTarget,
                                                    store: ApprovalStore) -> None:
    root = target.directory
    (root / "app.env").write_text("MODE=one\n")
    (root / "compose.override.yaml").write_text(
        "services:\n  app:\n    env_file: [app.env]\n")
    approve(check_project(target, store, render_notes=False))
    up_check(target, store)
    assert up_check(target, store).snapshot.cached
    (root / "app.env").write_text("MODE=two\n")
    check = up_check(target, store)
    assert not check.snapshot.cached and check.comparison.model_changed


def test_a_dockerfile_is_an_input(target: ComposeTarget, store: ApprovalStore) -> None:
    root = target.directory
    (root / "ctx").mkdir()
    (root / "ctx" / "Dockerfile").write_text("FROM busybox\n")
    (root / "compose.override.yaml").write_text("services:\n  app:\n    build: ./ctx\n")
    approve(check_project(target, store, render_notes=False))
    up_check(target, store)
    assert up_check(target, store).snapshot.cached
    (root / "ctx" / "Dockerfile").write_text("FROM busybox\nUSER root\n")
    check = up_check(target, store)
    assert not check.snapshot.cached and check.comparison.changed


def test_a_new_compose_plugin_is_a_miss(target: ComposeTarget, store: ApprovalStore,
                                        tmp_path: Path) -> None:
    home = tmp_path / "home"
    plugins = home / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    env = {**target.environ(), "HOME": str(home)}
    snapshot = check_project(target, store, render_notes=False).snapshot
    approval = snapshot.approval()

    def key() -> str:
        return resolved.input_key(store, target.directory, env, files=snapshot.files,
                                  git=snapshot.git.states, named={}, approval=approval)

    before = key()
    assert key() == before
    (plugins / "docker-compose").write_text("#!/bin/sh\n")
    assert key() != before


def test_a_damaged_cache_is_a_miss_and_the_cache_is_private(warm: ComposeTarget,
                                                            store: ApprovalStore) -> None:
    path = store.directory(warm.directory) / resolved.CACHE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text('{"format": 2, "key": "x"')
    check = up_check(warm, store)
    assert not check.snapshot.cached and not check.comparison.changed
    assert up_check(warm, store).snapshot.cached  # written again


def test_trust_never_reuses(warm: ComposeTarget, store: ApprovalStore) -> None:
    assert not check_project(warm, store, render_notes=False).snapshot.cached


def test_a_refused_model_is_never_cached(warm: ComposeTarget, store: ApprovalStore) -> None:
    (warm.directory / "compose.override.yaml").write_text(
        "services:\n  app:\n    privileged: true\n")
    for _ in range(2):
        check = up_check(warm, store)
        assert not check.snapshot.cached and check.comparison.model_changed
    assert resolved.load(store, warm.directory) is None
    os.remove(warm.directory / "compose.override.yaml")
    assert not up_check(warm, store).snapshot.cached
    assert up_check(warm, store).snapshot.cached


def test_a_file_not_kept_as_text_makes_every_variable_count() -> None:
    text = FileState("hmac-sha256:1", "image: ${IMAGE}\n")
    binary = FileState("hmac-sha256:2", None)
    env = {"IMAGE": "a", "OTHER": "b", "COMPOSE_X": "c"}
    assert resolved.read_environment(env, [text]) == {"IMAGE": "a", "COMPOSE_X": "c"}
    assert resolved.read_environment(env, [text, binary]) == env
    assert resolved.read_environment(env, [text, FileState(None)]) == {"IMAGE": "a",
                                                                         "COMPOSE_X": "c"}


@pytest.mark.parametrize("limits", [
    "", "sidecar:\n  limits:\n    routed: {memory: 2g, pids: 512}\n"])
def test_the_cache_says_whether_routed_services_are_limited(target: ComposeTarget,
                                                            store: ApprovalStore,
                                                            limits: str) -> None:
    # A reused resolution skips reading the approved bridge.yaml for its routed limit only
    # when it sets none.
    _append(target.directory / ".sidecar" / "bridge.yaml", limits)
    approve(check_project(target, store, render_notes=False))
    up_check(target, store)
    check = up_check(target, store)
    assert check.snapshot.cached
    assert check.snapshot.routed is bool(limits)
    found = resolved.load(store, target.directory)
    assert found is not None and found.routed is bool(limits)
