"""The firewall's contact with the system: running its tools, the forwarder's process, caps."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from sidecar_gen.firewall import STATE_DIR, FirewallError

# A fixed PATH: the tools run as root, so never look them up where somebody else can write.
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAP_NET_ADMIN = 12
REBUILD_FIX = "rebuild the image: it lacks a tool the firewall needs"


def run(step: str, argv: list[str], stdin: str | None = None) -> str:
    """Run a tool; return its stdout; any failure is a FirewallError naming `step`."""
    exe = shutil.which(argv[0], path=TOOL_PATH)
    if exe is None:
        raise FirewallError(step, f"{argv[0]} is not installed", REBUILD_FIX)
    try:
        done = subprocess.run([exe, *argv[1:]], input=stdin, capture_output=True, text=True,
                              timeout=20, check=False)
    except OSError as exc:
        raise FirewallError(step, f"cannot run {argv[0]}: {exc.strerror}", REBUILD_FIX) from None
    except subprocess.TimeoutExpired:
        raise FirewallError(step, f"{argv[0]} did not finish in 20 s") from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:300] or f"exit {done.returncode}"
        raise FirewallError(step, detail)
    return done.stdout


def has_capability(bit: int, status: str | None = None) -> bool:
    """True when this process's effective capabilities hold `bit` (from /proc/self/status)."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
        except OSError:
            return True  # cannot tell: let the tools themselves fail
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split()[1], 16) >> bit & 1)
            except (IndexError, ValueError):
                return True
    return True


def ipv6_available() -> bool:
    """True when the kernel has IPv6 in this network namespace."""
    return Path("/proc/net/if_inet6").exists()


def forwarder_pid(state_dir: Path = STATE_DIR) -> int | None:
    """The running forwarder's pid (its pid file, checked against /proc), else None."""
    try:
        pid = int((state_dir / "dnsmasq.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ...": a zombie (nobody reaped it yet) is as dead as a missing process.
    comm, _, rest = stat.partition(" (")[2].rpartition(") ")
    return pid if comm == "dnsmasq" and not rest.startswith("Z") else None


def stop_forwarder(state_dir: Path = STATE_DIR, timeout: float = 3.0) -> None:
    """SIGTERM the forwarder, if it runs, and wait until it is gone (its port is free)."""
    pid = forwarder_pid(state_dir)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while forwarder_pid(state_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.01)
