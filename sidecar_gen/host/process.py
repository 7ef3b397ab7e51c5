"""The one runner of programs sidecar starts on the host (git, the compose CLI).

Every child runs in a process group of its own, under a time limit that depends on the kind of
call (`LIMITS`, each one overridable with `SIDECAR_TIMEOUT_<KIND>`, in seconds). When the limit
passes, or sidecar itself receives SIGTERM, SIGINT or SIGHUP, the whole group is stopped
(SIGTERM, then SIGKILL after a grace period): `docker compose` runs as a plugin child of the
docker CLI, and killing only the CLI would leave the plugin running. A timeout raises
`HostTimeoutError` (one line naming what timed out); a signal raises `errors.Interrupted`, which the
CLI turns into exit 128+N.

A child may run as another user (`Identity`): as root, sidecar runs git as the owner of the
project folder (git refuses another owner's repository, and what it writes is that owner's).

A child that is not captured (compose's progress during `sidecar up`) still does not write to
the terminal itself: its output is relayed line by line, escaped (`runtime.escape`), as it
comes. Compose prints service names and, when it builds, a build's output: text the agent can
shape must not move the cursor under the user's eyes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from sidecar_gen.errors import ExitCode, Interrupted, SidecarError
from sidecar_gen.runtime.escape import escape

# Seconds, per kind of call. Builds run inside `compose up`: that limit is generous.
LIMITS: dict[str, float] = {
    "git": 120.0,
    "compose-version": 30.0,
    "compose-config": 60.0,
    "compose-up": 1800.0,
    "compose-pull": 1800.0,
}
GRACE = 5.0  # between SIGTERM and SIGKILL to a group that outlived its limit
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class HostTimeoutError(SidecarError):
    """A host command did not finish within its time limit (it was stopped)."""

    def __init__(self, what: str, kind: str, seconds: float) -> None:
        super().__init__(f"{what} did not finish within {seconds:g} s: stopped it and its "
                         f"children (set {env_name(kind)} to allow longer)",
                         exit_code=ExitCode.FINDINGS)
        self.kind = kind


@dataclass(frozen=True)
class Identity:
    """The user and group a child runs as (only root can ask for another)."""

    uid: int
    gid: int


def env_name(kind: str) -> str:
    """The environment variable that overrides the limit of `kind`."""
    return "SIDECAR_TIMEOUT_" + kind.upper().replace("-", "_")


def limit(kind: str) -> float:
    """The time limit of a kind of call, in seconds (`SIDECAR_TIMEOUT_<KIND>` wins)."""
    raw = os.environ.get(env_name(kind), "").strip()
    if not raw:
        return LIMITS[kind]
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e7:
        raise SidecarError(f"{env_name(kind)}={raw!r}: expected a number of seconds above 0",
                           exit_code=ExitCode.USAGE)
    return value


def owner_identity(path: Path) -> Identity | None:
    """When sidecar runs as root: the owner of `path` if that is another user, else None."""
    if os.geteuid() != 0:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return Identity(info.st_uid, info.st_gid) if info.st_uid != 0 else None


# --- signals ------------------------------------------------------------------------------------

_live: set[int] = set()  # process groups of running children
_saved: dict[int, object] = {}
_lock = threading.Lock()
_caught: list[int] = []  # the signal being handled: a second one must not cut the clean-up
_starting: list[int] = []  # a child is being started: a signal now waits until it is known


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _caught:
        return
    _caught.append(signum)
    if _starting:
        return  # raised by `Child` once the new child is registered (and can be stopped)
    raise Interrupted(signum)


def _watch_signals() -> None:
    """While children run, a signal to sidecar interrupts the wait (then the group is killed)."""
    if threading.current_thread() is not threading.main_thread() or _saved:
        return
    for signum in SIGNALS:
        _saved[signum] = signal.signal(signum, _on_signal)


def _unwatch_signals() -> None:
    if threading.current_thread() is not threading.main_thread() or _live or not _saved:
        return
    for signum, previous in _saved.items():
        signal.signal(signum, previous)  # type: ignore[arg-type]
    _saved.clear()
    _caught.clear()


def _exited(pid: int) -> bool:
    """True when the child exited (left unreaped: its pid, the group's id, stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _stop_group(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the child's group, SIGKILL after GRACE, then reap the child."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline and not _exited(process.pid):
        time.sleep(0.05)
    # The leader may be gone while others of its group still run: SIGKILL to the group
    # either way (the unreaped leader keeps the group's id from being reused).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait()


# --- running ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostCommand:
    """One host command: `what` names it in messages (`docker compose config in /x`)."""

    argv: Sequence[str]
    kind: str
    what: str
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    input: str | None = None
    capture: bool = True  # False: its output is relayed, escaped, to our stdout and stderr
    identity: Identity | None = None


class Child:
    """A started call: `finish()` waits for it within its limit (use as a context manager,
    so the group is stopped if the caller leaves early)."""

    def __init__(self, call: HostCommand) -> None:
        self.call = call
        self.seconds = limit(call.kind)
        self._deadline = time.monotonic() + self.seconds
        extra: dict[str, object] = {}
        if call.identity is not None:
            extra = {"user": call.identity.uid, "group": call.identity.gid,
                     "extra_groups": []}
        self._done: subprocess.CompletedProcess[str] | None = None
        with _lock:
            _watch_signals()
            _starting.append(1)
            try:
                self.process: subprocess.Popen[str] = subprocess.Popen(
                    list(call.argv), cwd=call.cwd,
                    env=None if call.env is None else dict(call.env),
                    stdin=subprocess.PIPE if call.input is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    errors="replace", process_group=0, **extra)  # type: ignore[call-overload]
            except OSError as exc:
                _starting.pop()
                _unwatch_signals()
                raise SidecarError(f"cannot run {call.what}: {exc.strerror or exc}",
                                   exit_code=ExitCode.USAGE) from None
            _live.add(self.process.pid)
            _starting.pop()
        if _caught and not _starting:  # a signal came while it started
            signum = _caught[0]
            self._stop()
            raise Interrupted(signum)

    def finish(self) -> subprocess.CompletedProcess[str]:
        """Wait for the child; its output. HostTimeoutError when it passed its limit."""
        if self._done is not None:
            return self._done
        try:
            if self.call.capture:
                out, err = self.process.communicate(
                    self.call.input, timeout=max(0.0, self._deadline - time.monotonic()))
            else:
                out, err = self._relay()
        except subprocess.TimeoutExpired:
            self._stop()
            raise HostTimeoutError(self.call.what, self.call.kind, self.seconds) from None
        except BaseException:
            self._stop()
            raise
        self._release()
        self._done = subprocess.CompletedProcess(list(self.call.argv), self.process.returncode,
                                                 out or "", err or "")
        return self._done

    def _relay(self) -> tuple[str, str]:
        """Feed the input, relay both streams escaped while the child runs, and wait for it
        within the limit (TimeoutExpired past it)."""
        pumps = [threading.Thread(target=_pump, args=(source, sink), daemon=True)
                 for source, sink in ((self.process.stdout, sys.stdout),
                                      (self.process.stderr, sys.stderr)) if source is not None]
        for pump in pumps:
            pump.start()
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write(self.call.input or "")
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        _wait(self.process, self._deadline)
        for pump in pumps:
            pump.join(timeout=GRACE)
        return "", ""

    def _stop(self) -> None:
        try:
            _stop_group(self.process)
        finally:
            self._release()

    def _release(self) -> None:
        with _lock:
            _live.discard(self.process.pid)
            _unwatch_signals()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._done is None and self.process.returncode is None:
            self._stop()


def _wait(process: subprocess.Popen[str], deadline: float) -> None:
    """Wait for `process` until `deadline` (TimeoutExpired past it, the child not reaped).

    Through a pidfd where there is one: woken the moment the child exits. `Popen.wait` with a
    timeout polls, sleeping up to 50 ms between looks, which `sidecar up` paid on every start
    (compose's own `up` on a running stack takes about half a second)."""
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or the child is gone already
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
        return
    try:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(fd)
    if not ready:
        raise subprocess.TimeoutExpired(process.args, max(0.0, deadline - time.monotonic()))
    process.wait()


def _pump(source: IO[str], sink: TextIO) -> None:
    """Copy `source` to `sink` a line at a time, each line escaped (its line break kept)."""
    with contextlib.suppress(OSError, ValueError):
        for line in source:
            body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
            sink.write(escape(body) + newline)
            sink.flush()


def start(call: HostCommand) -> Child:
    """Start `call` (its limit starts now)."""
    return Child(call)


def run(call: HostCommand) -> subprocess.CompletedProcess[str]:
    """Run `call` to its end within its limit; its exit status and (captured) output."""
    with start(call) as child:
        return child.finish()
