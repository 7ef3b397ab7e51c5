"""What the benchmarks share: alternating timed runs, and a busybox target with wrappers."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from images import BUSYBOX_IMAGE as IMAGE  # noqa: E402  (the test images' one list of names)

Commands = dict[str, tuple[list[str], dict[str, str]]]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], stdin: Path | None = None,
          expect: int = 0) -> tuple[float, float]:
    """(wall time, CPU time) of one run; a run that does not exit `expect` ends the benchmark
    (its figure would be a lie). CPU time is the program's own (user + system), which machine
    load hardly changes, unlike wall time."""
    with open(stdin or os.devnull, "rb") as source:
        cpu = _children_cpu()
        start = time.perf_counter()
        result = subprocess.run(argv, check=False, env=env, stdin=source,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/tmp")
        elapsed = time.perf_counter() - start
        cpu = _children_cpu() - cpu
    if result.returncode != expect:
        sys.exit(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed, cpu


def alternate(runs: int, commands: Commands, stdin: Path | None = None,
              expect: dict[str, int] | None = None,
              cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Median wall times of `runs` runs of each command, alternating (order reversed every
    other round) so that machine noise hits every command alike; `expect` maps a command to the
    exit code it must end with (default 0); `cpu`, when given, receives the median CPU times."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        for name in order:
            argv, env = commands[name]
            wall, used = timed(argv, env, stdin, (expect or {}).get(name, 0))
            samples[name].append(wall)
            cpus[name].append(used)
    if cpu is not None:
        cpu.update({name: statistics.median(values) for name, values in cpus.items()})
    return {name: statistics.median(values) for name, values in samples.items()}


def write_data(path: Path, mib: int) -> None:
    """MIB MiB of incompressible data, each MiB numbered so a reordering would show."""
    with open(path, "wb") as handle:
        block = os.urandom(1024 * 1024)
        for index in range(mib):
            handle.write(index.to_bytes(8, "big") + block[8:])


ROUTES = {
    "true": "true",
    "cat": "cat",
    "exit1": ["sh", "-c", "exit 1"],
    "killed": ["sh", "-c", "kill -9 $$"],  # 137, as a command killed by SIGKILL
}


@dataclass
class Target:
    """A running busybox container, a bridge.yaml routing `ROUTES` to it, wrappers."""

    docker: str
    name: str
    tmp: Path
    config: Path
    wrappers: Path
    base_env: dict[str, str]

    def env(self, docker_host: str) -> dict[str, str]:
        """The wrappers' environment for one endpoint."""
        return {**self.base_env, "DOCKER_HOST": docker_host}


@contextlib.contextmanager
def bench_target(prefix: str, *, compose: bool = False) -> Iterator[Target]:
    """Start the target container and install the wrappers; remove everything afterwards.

    `compose`: the target is the one member of compose service `bench` of project `name` (the
    commands route to the service, as in a stack), else a container routed to by its name.
    """
    docker = shutil.which("docker")
    if docker is None:
        sys.exit("the docker CLI is needed for the benchmark")
    from sidecar_gen.wrappers.install import install_wrappers

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    labels = ["dev.claude-sidecar.test=1"]
    if compose:
        labels += [f"com.docker.compose.project={name}", "com.docker.compose.service=bench",
                   "com.docker.compose.container-number=1"]
    subprocess.run([docker, "run", "-d", "--init", "--name", name,
                    *(arg for label in labels for arg in ("--label", label)),
                    IMAGE, "sleep", "36000"], check=True, stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        config = tmp / "bridge.yaml"
        container = "bench" if compose else name
        config.write_text(json.dumps({"version": "1", "commands": {
            command: {"container": container, "exec": argv}
            for command, argv in ROUTES.items()
        }, **({"sidecar": {"project": name}} if compose else {})}))
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        install_wrappers(tmp / "bin", config)
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                "XDG_CACHE_HOME": str(tmp / "cache"), "BRIDGE_CONFIG": str(config)}
        yield Target(docker, name, tmp, config, tmp / "bin", base)
    finally:
        subprocess.run([docker, "rm", "-f", name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def install_baseline(directory: Path, checkout: Path, config: Path) -> None:
    """Wrappers in `directory` that run the dispatcher of another checkout (`checkout` holds
    its `sidecar_gen/`), for timing a change against what it replaces. Give them their own
    XDG_CACHE_HOME: two route cache formats would otherwise evict each other."""
    import sidecar_gen
    from sidecar_gen.wrappers import install as wrappers

    current = str(Path(sidecar_gen.__file__).resolve().parent.parent)
    text = wrappers.launcher_text().replace(repr(current), repr(str(checkout.resolve())), 1)
    directory.mkdir(parents=True)
    launcher = directory / wrappers.LAUNCHER_NAME
    launcher.write_text(text)
    launcher.chmod(0o755)
    for command in json.loads(config.read_text())["commands"]:
        (directory / command).symlink_to(wrappers.LAUNCHER_NAME)


@contextlib.contextmanager
def old_tree(rev: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The `sidecar` command of an older revision (extracted with `git archive`): (argv prefix,
    environment) to run it with this interpreter and its dependencies."""
    tree = Path(tempfile.mkdtemp(prefix="sidecar-old-"))
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "sidecar_gen",
                                  "schemas", "templates"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        # -P: not the current directory first (it may hold this tree's sidecar_gen).
        argv = [sys.executable, "-P", "-c",
                "import sys; from sidecar_gen.cli import main; sys.argv[0] = 'sidecar'; main()"]
        yield argv, {**os.environ, "PYTHONPATH": str(tree)}
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def probe(listen: str) -> None:
    """Connect once to a gate's listening address (OSError while nothing listens)."""
    if listen.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.2)
            sock.connect(listen[len("unix://"):])
    else:
        host, _, port = listen[len("tcp://"):].rpartition(":")
        socket.create_connection((host, int(port)), timeout=0.2).close()


def start_gate(config: Path, listen: str, log: Path, extra: tuple[str, ...] = (), *,
               command: list[str] | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`sidecar proxy` (this tree's, or `command`) on `listen`, once it accepts connections."""
    argv = [*(command or [str(Path(sys.executable).parent / "sidecar")]), "proxy", "--listen",
            listen, "--config", str(config), "--log", str(log), *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            probe(listen)
            return proc
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                sys.exit(f"the gate did not start: {err}")
            time.sleep(0.05)
    sys.exit("the gate did not start within 15 s")
