"""Shared fixtures. Docker fixtures talk to a real engine; none fakes it.

Without a reachable engine, Docker tests skip, unless SIDECAR_E2E=required (CI), where a
missing engine fails them instead. The images they use are named in tests/images.py.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import InMemoryExampleDatabase
from images import BUSYBOX_IMAGE, DEBIAN_IMAGE

REPO = Path(__file__).resolve().parent.parent
TEST_LABEL = "dev.claude-sidecar.test"

# No test writes into the checkout: hypothesis keeps failing examples for the run only, and
# its other files (.hypothesis/ by default) go to a folder of its own outside the checkout.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="sidecar-tests-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
settings.register_profile("sidecar", database=InMemoryExampleDatabase())
settings.load_profile("sidecar")


def _e2e_required() -> bool:
    return os.environ.get("SIDECAR_E2E", "").lower() == "required"


def unavailable(message: str) -> NoReturn:
    """A missing engine, image or tool: a failure under SIDECAR_E2E=required, else a skip."""
    if _e2e_required():
        pytest.fail(message)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Docker tests are marked by the fixture they use, so nobody forgets the marker."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "docker_client" in fixtures or "docker_engine" in fixtures:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client for a reachable engine with the local test images."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        unavailable(f"no Docker engine is reachable: {exc}")
    try:
        client.images.get(BUSYBOX_IMAGE)
    except Exception as exc:
        unavailable(f"local test image {BUSYBOX_IMAGE} is missing (run scripts/test-images): "
                    f"{exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_engine(docker_client: Any) -> Any:
    """Alias for tests that need the engine but not the client object."""
    return docker_client


def is_podman(client: Any) -> bool:
    """Whether the engine under test is Podman (its compat API names its components so)."""
    components = client.version().get("Components") or []
    return any(c.get("Name") == "Podman Engine" for c in components)


def exec_records(client: Any, container_id: str, since: int) -> list[dict[str, Any]]:
    """The engine's own records of the execs created in a container since `since` (epoch s):
    each exec's inspect answer. Docker's events name each exec (`exec_create: CMD`, its id);
    Podman's carry neither, so there the container's `ExecIDs` (kept a few minutes after an
    exec ended) are read instead."""
    if is_podman(client):
        ids = client.api.inspect_container(container_id).get("ExecIDs") or []
    else:
        ids = [event["Actor"]["Attributes"]["execID"]
               for event in client.events(since=since, until=int(time.time()) + 1,
                                          decode=True, filters={"container": container_id})
               if str(event.get("Action", "")).startswith("exec_create:")]
    return [client.api.exec_inspect(exec_id) for exec_id in ids]


def unique_name(prefix: str = "sidecar-test") -> str:
    """A container/project name no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_container(docker_client: Any) -> Iterator[Callable[..., Any]]:
    """Start busybox containers with unique names; all are removed after the test."""
    created: list[Any] = []

    def _make(name: str | None = None, command: str | list[str] = "sleep 3600",
              **kwargs: Any) -> Any:
        labels = {TEST_LABEL: "1", **kwargs.pop("labels", {})}
        container = docker_client.containers.run(
            kwargs.pop("image", BUSYBOX_IMAGE),
            command,
            name=name or unique_name(),
            detach=True,
            labels=labels,
            init=kwargs.pop("init", True),
            **kwargs,
        )
        created.append(container)
        return container

    yield _make
    for container in created:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.fixture(scope="session")
def compose_cli(docker_client: Any) -> list[str]:
    """The Docker Compose v2 command line."""
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if result.returncode != 0:
        unavailable("Docker Compose v2 is not installed (run .ci/engine.sh)")
    return ["docker", "compose"]


@pytest.fixture
def sidecar_cli() -> list[str]:
    """Run the installed `sidecar` command of this interpreter's environment."""
    exe = Path(sys.executable).parent / "sidecar"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("sidecar")
    assert found, "the sidecar command is not installed"
    return [found]


def _claude_image(docker_client: Any, variant: str) -> str:
    from image.build import NpmRegistryError, ensure_claude_image

    try:
        docker_client.images.get(DEBIAN_IMAGE)
    except Exception as exc:
        unavailable(f"local base image {DEBIAN_IMAGE} is missing (run scripts/test-images): "
                    f"{exc}")
    try:
        return ensure_claude_image(variant)
    except NpmRegistryError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def claude_image(docker_client: Any) -> str:
    """`sidecar-test/claude:none-<inputs hash>`: the image without Claude Code, built offline
    from the local Debian base when needed (reused while its inputs are unchanged; see
    tests/image/build.py)."""
    return _claude_image(docker_client, "none")


@pytest.fixture(scope="session")
def claude_code_image(docker_client: Any) -> str:
    """`sidecar-test/claude:npm-<inputs hash>`: the image with the npm registry's latest Claude
    Code (CLAUDE_INSTALL=npm), built when needed; needs the npm registry once per release."""
    return _claude_image(docker_client, "npm")


@pytest.fixture
def ministack(tmp_path: Path, claude_image: str, compose_cli: list[str],
              sidecar_cli: list[str]) -> Iterator[Any]:
    """A rendered claude service on its own (tests/image/minstack.py), taken down after."""
    from image.minstack import make_ministack

    stack = make_ministack(tmp_path, claude_image, compose_cli, sidecar_cli)
    try:
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "-t", "1", timeout=120)
