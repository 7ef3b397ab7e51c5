"""The agent writing the project folder against `sidecar up` on the host: every write that
would change how the stack starts is refused by name, before any engine call; files planted to
hang or exhaust `up` are refused by name at once; a link swapped in behind a bind source, a
build context or a `configs:` file (the engine follows it at the next start, compose's model
does not show it) is a change of the model.

`sidecar up` runs with an unreachable engine: a refusal must come before any engine call, and
an unchanged project gets as far as the engine ("cannot reach the Docker engine").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust.record import ApprovalStore
from trust.test_cli_host import NO_ENGINE, run

pytestmark = pytest.mark.usefixtures("compose_config")
REACHED = "cannot reach the Docker engine"

EXTRA = """\
  gate:
    image: busybox:latest
    user: "${PUID:-1000}:${PGID:-1000}"
    volumes:
      - ${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock:ro
      - ./data:/data
    configs: [settings]
  web:
    image: busybox:latest
    profiles: [extra]
  built:
    build: {context: ./ctx, additional_contexts: {extra: ./extra}}
    volumes: [devvol:/devvol]
volumes:
  devvol:
    driver_opts: {type: none, o: bind, device: ./voldev}
configs:
  settings:
    file: ./settings.txt
"""


@pytest.fixture
def approved(target: ComposeTarget, store: ApprovalStore, tmp_path: Path) -> ComposeTarget:
    """The demo project with a gate-like service (socket, PUID), a bind source, a profile, a
    build context and a config file, approved."""
    root = target.directory
    text = (root / "compose.yaml").read_text()
    # A volume's `device` is kept as written: only an absolute one is a bind the engine makes.
    extra = EXTRA.replace("./voldev", str(root / "voldev"))
    (root / "compose.yaml").write_text(text.replace("include:", extra + "include:", 1))
    for folder in ("data", "ctx", "extra", "voldev"):
        (root / folder).mkdir()
    (root / "ctx" / "Dockerfile").write_text("FROM busybox:latest\n")
    (root / "settings.txt").write_text("a=1\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "id_rsa").write_text("host secret\n")
    trusted = run(target, "trust", "--yes")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    return target


def _unchanged(target: ComposeTarget) -> None:
    up = run(target, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 1 and REACHED in up.stderr, up.stdout + up.stderr


def _refused(target: ComposeTarget, *names: str) -> str:
    up = run(target, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 1, up.stdout + up.stderr
    assert REACHED not in up.stderr
    for name in names:
        assert name in up.stderr.splitlines()[-1], (name, up.stderr)
    return up.stdout


def test_the_fixture_is_approved_and_unchanged(approved: ComposeTarget) -> None:
    _unchanged(approved)


@pytest.mark.parametrize(("line", "setting"), [
    ("COMPOSE_PROJECT_NAME=other", "+name:"),
    ("COMPOSE_PROFILES=extra", "+services.web."),
    ("COMPOSE_FILE=compose.yaml;evil.yml\nCOMPOSE_PATH_SEPARATOR=;", "+services.app.privileged"),
    ("DOCKER_SOCKET=/", '+services.gate.volumes[0].source: "/"'),
    ("PUID=0\nPGID=0", '+services.gate.user: "0:0"'),
])
def test_dotenv_that_changes_the_start_is_refused(approved: ComposeTarget, line: str,
                                                  setting: str) -> None:
    root = approved.directory
    (root / "evil.yml").write_text("services:\n  app:\n    privileged: true\n")
    with (root / ".env").open("a") as handle:
        handle.write(line + "\n")
    diff = _refused(approved, ".env")
    assert setting in diff


def test_dotenv_compose_env_files_is_harmless_or_refused(approved: ComposeTarget) -> None:
    """COMPOSE_ENV_FILES (compose 2.24+) chooses other env files: where compose knows it, the
    model changes and `up` refuses; where it does not, nothing changes."""
    root = approved.directory
    (root / "evil.env").write_text("DOCKER_SOCKET=/\n")
    with (root / ".env").open("a") as handle:
        handle.write("COMPOSE_ENV_FILES=evil.env\n")
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 1, up.stdout + up.stderr
    if REACHED in up.stderr:  # not understood: the socket mount is the approved one
        assert '"/"' not in up.stdout
    else:
        assert '+services.gate.volumes[0].source: "/"' in up.stdout


@pytest.mark.parametrize("name", ["docker-compose.override.yml", "docker-compose.override.yaml",
                                  "compose.override.yml", "compose.override.yaml"])
def test_every_override_spelling_is_refused_or_ignored(approved: ComposeTarget,
                                                       name: str) -> None:
    (approved.directory / name).write_text("services:\n  gate:\n    privileged: true\n")
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 1, up.stdout + up.stderr
    if REACHED in up.stderr:  # compose reads only the override of the file it picked
        assert name.startswith("docker-compose"), up.stdout
        assert "privileged" not in up.stdout
    else:
        assert name in up.stderr.splitlines()[-1], up.stderr
        assert "+services.gate.privileged: true" in up.stdout


@pytest.mark.parametrize("labels", ["{dev.claude-sidecar.role: claude}",
                                    "{dev.claude-sidecar.role: gate}"])
def test_a_role_label_given_to_a_service_is_refused(approved: ComposeTarget,
                                                    labels: str) -> None:
    """Whether approved or not: a service that claims a role must look like it."""
    (approved.directory / "compose.override.yaml").write_text(
        f"services:\n  gate:\n    labels: {labels}\n")
    for command in (("up",), ("trust", "--yes")):
        up = run(approved, *command, DOCKER_HOST=NO_ENGINE)
        assert up.returncode == 1, up.stdout + up.stderr
        assert "refusing a stack that exposes the approved policy: service gate" in up.stderr


@pytest.mark.parametrize("name", [".env", "compose.override.yaml",
                                  "docker-compose.override.yml", "settings.txt"])
def test_a_fifo_is_refused_by_name_at_once(approved: ComposeTarget, name: str) -> None:
    path = approved.directory / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)  # a hang would time out (and fail)
    if name == "settings.txt":
        # A `configs:` file is a bind source, not a compose input: the engine mounts it, and
        # nothing of the host reads it (compose would refuse to mount a FIFO at the start).
        assert up.returncode == 1 and REACHED in up.stderr, up.stdout + up.stderr
        return
    assert up.returncode == 2, up.stdout + up.stderr
    assert up.stderr.strip().splitlines()[-1].endswith(f"{name}: is a FIFO, not a regular "
                                                       "file (remove it)"), up.stderr


def test_a_link_to_an_endless_device_is_refused_by_name(approved: ComposeTarget) -> None:
    (approved.directory / "compose.override.yaml").symlink_to("/dev/zero")
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 2, up.stdout + up.stderr
    assert "compose.override.yaml: is a character device" in up.stderr


def test_a_huge_sparse_file_is_refused_by_name(approved: ComposeTarget) -> None:
    path = approved.directory / "docker-compose.override.yml"
    with path.open("wb") as handle:
        handle.truncate(1 << 40)  # one TiB of nothing: hashing it would take hours
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 2, up.stdout + up.stderr
    assert "docker-compose.override.yml: is larger than 16 MiB" in up.stderr


@pytest.mark.parametrize(("rel", "key", "named"), [
    ("data", "services.gate.volumes[1].x-sidecar-resolved", "effective compose model"),
    ("ctx", "services.built.build.x-sidecar-resolved[0]", "ctx/Dockerfile"),
    ("extra", "services.built.build.x-sidecar-resolved[0]", "effective compose model"),
    ("voldev", "volumes.devvol.x-sidecar-resolved", "effective compose model"),
    ("settings.txt", "configs.settings.x-sidecar-resolved", "effective compose model"),
])
def test_a_link_swapped_in_behind_a_source_is_refused(
        approved: ComposeTarget, tmp_path: Path, rel: str, key: str, named: str) -> None:
    """The model compose prints names `./data` either way; the engine would mount the link's
    target (the host's secrets) at the next start."""
    path = approved.directory / rel
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()
    outside = tmp_path / "outside"
    path.symlink_to(outside / "id_rsa" if rel.endswith(".txt") else outside)
    diff = _refused(approved, named)
    assert f"+{key}: " in diff and str(outside) in diff


def test_a_link_that_was_approved_is_no_change(approved: ComposeTarget, tmp_path: Path) -> None:
    """A bind source the user made a link themselves, approved, stays approved."""
    data = approved.directory / "data"
    data.rmdir()
    data.symlink_to(tmp_path / "outside")
    assert run(approved, "trust", "--yes").returncode == 0
    _unchanged(approved)


def test_an_edited_dockerfile_is_refused_by_name(approved: ComposeTarget) -> None:
    """The Dockerfile of a built service decides what runs there (its base, its USER); compose
    reads it only when it builds, so its content is part of the approval."""
    dockerfile = approved.directory / "ctx" / "Dockerfile"
    dockerfile.write_text("FROM busybox:latest\nUSER root\n")
    diff = _refused(approved, "ctx/Dockerfile")
    assert "+USER root" in diff and "services.built.build.x-sidecar-dockerfile" in diff
    assert run(approved, "trust", "--yes").returncode == 0
    _unchanged(approved)


def test_a_dockerfile_that_is_a_fifo_is_refused_by_name(approved: ComposeTarget) -> None:
    dockerfile = approved.directory / "ctx" / "Dockerfile"
    dockerfile.unlink()
    os.mkfifo(dockerfile)
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 2, up.stdout + up.stderr
    assert "ctx/Dockerfile: is a FIFO" in up.stderr


@pytest.mark.parametrize("override", [
    "x-deep: " + "[" * 3000 + "]" * 3000 + "\n",
    "x-deep: " + "[" * 200 + "]" * 200 + "\n",
    "services:\n  app:\n    x-deep: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
])
def test_a_deeply_nested_compose_file_is_one_line_not_a_crash(approved: ComposeTarget,
                                                               override: str) -> None:
    """Refused by name before compose reads it: sidecar's bounded YAML loader checks every
    compose file first (an alias bomb kept compose busy for minutes)."""
    (approved.directory / "compose.override.yaml").write_text(override)
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert "internal error" not in up.stderr, up.stderr
    assert up.returncode == 2, up.stdout + up.stderr
    assert up.stderr.startswith(f"sidecar: error: {approved.directory}/compose.override.yaml: "
                                "line 1: nesting "), up.stderr
    assert up.stderr.endswith(" (refused before docker compose reads it)\n"), up.stderr


def test_a_linked_sidecar_folder_is_refused(approved: ComposeTarget, tmp_path: Path) -> None:
    """A `.sidecar/` made a link to a folder of the agent's choosing (a copy with a wider
    policy, or a host folder whose files would be carried into the policy volume)."""
    root = approved.directory
    elsewhere = tmp_path / "elsewhere"
    (root / ".sidecar").rename(elsewhere)
    (root / ".sidecar").symlink_to(elsewhere)
    up = run(approved, "up", DOCKER_HOST=NO_ENGINE)
    assert up.returncode == 2, up.stdout + up.stderr
    assert up.stderr.strip().endswith("is a symbolic link: the policy must be a plain file in "
                                      "the project's .sidecar/ folder"), up.stderr


def test_a_linked_dotenv_outside_the_folder_is_refused_by_name(approved: ComposeTarget,
                                                               tmp_path: Path) -> None:
    root = approved.directory
    outside = tmp_path / "outside" / "other.env"
    outside.write_text((root / ".env").read_text() + "DOCKER_SOCKET=/\n")
    (root / ".env").unlink()
    (root / ".env").symlink_to(outside)
    diff = _refused(approved, str(outside))
    assert '+services.gate.volumes[0].source: "/"' in diff


def test_a_linked_compose_file_with_the_same_content_is_harmless(approved: ComposeTarget,
                                                                 tmp_path: Path) -> None:
    """Compose reads the same bytes: the model is the one approved, and `up` starts it from
    stdin (the link is named, as a moved file, but decides nothing)."""
    root = approved.directory
    outside = tmp_path / "outside" / "compose.yaml"
    outside.write_text((root / "compose.yaml").read_text())
    (root / "compose.yaml").unlink()
    (root / "compose.yaml").symlink_to(outside)
    _unchanged(approved)
