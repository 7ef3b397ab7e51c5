"""Fixtures of the dispatcher's end-to-end tests.

Every e2e test gets its Docker endpoint from `docker_endpoint` only, so the whole suite can also
run through the Docker API gate: parametrize that fixture to start a gate on the bridge.yaml the
test wrote and return its `tcp://` address.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL

# The engine under test: DOCKER_HOST when set (Podman's socket in the Podman CI part).
DIRECT_SOCKET = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
Endpoint = Callable[[Path], str]


@pytest.fixture(params=["direct", "gate"])
def docker_endpoint(request: pytest.FixtureRequest, docker_engine: Any,
                    tmp_path: Path) -> Iterator[Endpoint]:
    """A function: bridge.yaml path -> DOCKER_HOST the dispatcher under test must use.

    Every e2e test runs twice: against the engine socket directly, and through a Docker API
    gate (`sidecar_gen.gate`) started on that bridge.yaml (one gate per bridge.yaml path) on a
    free local TCP port. The gate reads its policy once; each later call reloads it, as
    `sidecar up` does after approving a change.
    """
    if request.param == "direct":
        yield lambda _config: DIRECT_SOCKET
        return
    from gate.conftest import RunningGate, start_gate

    gates: dict[Path, RunningGate] = {}

    def through_gate(config: Path) -> str:
        if config not in gates:
            gates[config] = start_gate(tmp_path, config=config)
        else:
            gates[config].reload()
        return gates[config].address

    yield through_gate
    for gate in gates.values():
        gate.stop()


@dataclass
class DispatchEnv:
    """An installed set of wrappers and the environment to run them with."""

    root: Path
    bin: Path
    config: Path
    env: dict[str, str]
    endpoint: Endpoint
    report: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, bridge: dict[str, Any]) -> None:
        """(Re)write bridge.yaml; JSON is YAML, and keeps "1" a string."""
        text = json.dumps(bridge, indent=2)
        self.config.write_text(text, encoding="utf-8")
        # Force a new stamp even when an edit keeps the size within the same clock tick.
        st = self.config.stat()
        os.utime(self.config, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    def install(self) -> Any:
        """Run the install-wrappers core on the current bridge.yaml."""
        from sidecar_gen.wrappers.install import install_wrappers

        self.report = install_wrappers(self.bin, self.config)
        self.env["DOCKER_HOST"] = self.endpoint(self.config)
        return self.report

    def cmd(self, name: str) -> str:
        """Path of the wrapper for `name`."""
        return str(self.bin / name)

    def run(self, name: str, *args: str, input: bytes | None = None, cwd: str | Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 60,
            ) -> subprocess.CompletedProcess[bytes]:
        """Run wrapper `name` with `args`; stdout/stderr captured as bytes."""
        return subprocess.run(
            [self.cmd(name), *args],
            input=input if input is not None else b"",
            capture_output=True,
            cwd=cwd or "/tmp",  # exists in busybox: the default workdir is the CWD
            env={**self.env, **(env or {})},
            timeout=timeout,
        )

    def popen(self, name: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start wrapper `name` in the background."""
        kwargs.setdefault("cwd", "/tmp")
        kwargs.setdefault("env", self.env)
        return subprocess.Popen([self.cmd(name), *args], **kwargs)


@pytest.fixture
def dispatch_env(
    tmp_path: Path, docker_endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> Callable[[dict[str, Any]], DispatchEnv]:
    """A function: bridge dict -> DispatchEnv with bridge.yaml written and wrappers installed."""
    cache = tmp_path / "cache"
    # install-wrappers writes the route cache under XDG_CACHE_HOME: keep it in tmp_path.
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))

    def make(bridge: dict[str, Any]) -> DispatchEnv:
        root = tmp_path / f"env-{uuid.uuid4().hex[:6]}"
        (root / ".sidecar").mkdir(parents=True)
        wrappers = root / "bin"
        env = {
            "PATH": f"{wrappers}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(root),
            "XDG_CACHE_HOME": str(cache),
            "BRIDGE_CONFIG": str(root / ".sidecar" / "bridge.yaml"),
            "LANG": "C.UTF-8",
        }
        denv = DispatchEnv(root=root, bin=wrappers, config=root / ".sidecar" / "bridge.yaml",
                           env=env, endpoint=docker_endpoint)
        denv.write(bridge)
        denv.install()
        return denv

    return make


@pytest.fixture(scope="session")
def box(docker_client: Any) -> Iterator[str]:
    """One busybox container shared by the e2e tests that only run commands in it."""
    name = f"sidecar-disp-{uuid.uuid4().hex[:10]}"
    container = docker_client.containers.run(
        BUSYBOX_IMAGE, "sleep 36000", name=name, detach=True, init=True,
        labels={TEST_LABEL: "1"},
    )
    # A directory the path-mapping tests map onto, writable by the unprivileged user.
    container.exec_run(["sh", "-c", "mkdir -p /srv/app/src /data && chown 1000:1000 /srv/app"])
    try:
        yield name
    finally:
        container.remove(force=True)


def remote_processes(docker_client: Any, container: str) -> str:
    """`ps` output of a container (busybox ps: PID USER COMMAND)."""
    result = docker_client.containers.get(container).exec_run(["ps", "-o", "pid,args"])
    return result.output.decode("utf-8", "replace")


def python_exe() -> str:
    """The interpreter running the tests (the wrappers use the same one)."""
    return sys.executable


class PtyRun:
    """A program running with a real pty as its controlling terminal (we hold the master)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24,
                 cols: int = 80) -> None:
        import fcntl
        import pty
        import struct
        import termios

        pid, master = pty.fork()
        if pid == 0:  # child: size the terminal, then become the program
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.chdir("/tmp")
                os.execve(argv[0], argv, env)
            finally:
                os._exit(99)
        self.pid = pid
        self.master = master
        self.output = b""
        self.status: int | None = None

    def write(self, data: bytes) -> None:
        """Type `data` (as one write: a single key is one byte)."""
        os.write(self.master, data)

    def read_until(self, needle: bytes, seconds: float = 20) -> bool:
        """Read output until it contains `needle` (True) or `seconds` pass or it ends."""
        import select
        import time

        deadline = time.monotonic() + seconds
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                return False
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child side closed
                return needle in self.output
            if not data:
                break
            self.output += data
        return needle in self.output

    def wait(self, seconds: float = 30) -> int:
        """Read everything until the program ends; return its exit status."""
        self.read_until(b"\x00never\x00", seconds)
        import time

        deadline = time.monotonic() + seconds
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                os.kill(self.pid, 9)
            else:
                time.sleep(0.05)
        os.close(self.master)
        return self.status

    @property
    def text(self) -> str:
        """The output so far, decoded."""
        return self.output.decode("utf-8", "replace")
