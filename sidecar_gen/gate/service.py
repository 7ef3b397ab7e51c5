"""The running gate: options, the approved policy, the engine, the decisions and the server.

`run_gate(GateOptions(...))` is the `sidecar proxy` command; `Gate` is the same without signal
handling (tests and embedders run it in a thread and call `reload()` for what SIGHUP does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sidecar_gen.errors import InputError
from sidecar_gen.gate import policyfile
from sidecar_gen.gate.audit import DecisionLog
from sidecar_gen.gate.endpoints import decide
from sidecar_gen.gate.engine import Engine, UpstreamError
from sidecar_gen.gate.gatekeeper import Gatekeeper
from sidecar_gen.gate.http import Answer, Request, Switch
from sidecar_gen.gate.policy import self_container_ids
from sidecar_gen.gate.server import Limits, Server, bind
from sidecar_gen.model import Bridge
from sidecar_gen.runtime import transport


@dataclass
class GateOptions:
    """Everything `Gate` needs; the CLI fills it from flags."""

    listen: str
    upstream: str = transport.DEFAULT_HOST
    config: Path | None = None  # the approved bridge.yaml, read at start and on SIGHUP
    bridge: Bridge | None = None  # a fixed policy (tests), instead of `config`
    workspace: Path | None = None  # the workspace's bridge.yaml, only compared with `config`
    project: str | None = None  # the compose project to serve when not running in one
    strict: bool = False
    log: IO[str] | None = None  # decision log stream; None: stderr
    notices: IO[str] | None = None  # one-line notices (policy, scope); None: stderr
    self_ids: frozenset[str] | None = None  # the gate's own container; None: detect
    proc_root: Path = field(default_factory=lambda: Path("/proc/self"))
    limits: Limits = field(default_factory=Limits)


def detect_self_ids(proc_root: Path = Path("/proc/self")) -> frozenset[str]:
    """The gate's own container id(s), from mountinfo, cgroup and hostname (empty on a host)."""

    def read(name: str) -> str:
        try:
            return (proc_root / name).read_text(errors="replace")
        except OSError:
            return ""

    return self_container_ids(read("mountinfo"), read("cgroup"), socket.gethostname())


class Gate:
    """A gate ready to serve: `serve_forever()` in some thread, `shutdown()` from any."""

    def __init__(self, options: GateOptions) -> None:
        self._options = options
        self._notices = options.notices if options.notices is not None else sys.stderr
        self._log = DecisionLog(options.log if options.log is not None else sys.stderr)
        try:
            engine = Engine(options.upstream)
        except ValueError as exc:
            raise InputError(options.upstream, f"the upstream must be unix:///path or "
                                               f"tcp://HOST:PORT ({exc})") from None
        sock, address = bind(options.listen)
        self.address = address
        self.self_ids = (options.self_ids if options.self_ids is not None
                         else detect_self_ids(options.proc_root))
        self.keeper = Gatekeeper(engine, self._load(), self_ids=self.self_ids,
                                 project=options.project)
        self.server = Server(sock, address, handle=self._handle, log=self._log.record,
                             policy=lambda: self.keeper.state.header, limits=options.limits)
        self._note_scope()

    def _handle(self, request: Request, peer: str) -> Answer | Switch:
        return decide(self.keeper, method=request.method, raw_target=request.target,
                      headers=request.headers, body=request.body, peer=peer,
                      log=self._log.record)

    def _notice(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._notices.write(line + "\n")
            self._notices.flush()

    def _load(self) -> policyfile.PolicyState:
        options = self._options
        if options.bridge is not None:
            return policyfile.from_bridge(options.bridge, strict=options.strict,
                                          environ=os.environ)
        state, line = policyfile.load(options.config, strict=options.strict,
                                      environ=os.environ)
        self._notice(line)
        differs = policyfile.compare_workspace(state, options.workspace)
        if differs:
            self._notice(differs)
        return state

    def reload(self) -> None:
        """Read the approved policy again (what SIGHUP does); never on a file change."""
        self.keeper.state = self._load()

    def _note_scope(self) -> None:
        try:
            scope = self.keeper.scope()
        except UpstreamError as exc:
            self._notice(f"sidecar gate: {exc}; the compose project is determined on the first "
                         "request")
            return
        if scope:
            self._notice(f"sidecar gate: targets are limited to compose project {scope}")
        else:
            self._notice("sidecar gate: not in a compose project: targets are not limited to "
                         "one (pass --project to limit them)")

    def serve_forever(self) -> None:
        """Serve until `shutdown()`."""
        try:
            self.server.serve_forever()
        finally:
            self.keeper.engine.close()
            self._log.close()  # the counts of lines not written one by one

    def shutdown(self) -> None:
        """Stop serving (from any thread or a signal handler)."""
        self.server.shutdown()


def run_gate(options: GateOptions, *, ready: Callable[[str], None] | None = None) -> int:
    """Run the gate until SIGTERM or SIGINT; SIGHUP reloads the policy. Returns the exit code.

    A missing or invalid policy does not stop the gate: it refuses every request and says
    once how to fix it (so a restart loop never hides the reason).
    """
    gate = Gate(options)
    if ready is not None:
        ready(gate.address)
    if threading.current_thread() is threading.main_thread():
        # As a container's PID 1 the default actions of SIGTERM and SIGHUP are ignored.
        signal.signal(signal.SIGTERM, lambda _s, _f: gate.shutdown())
        signal.signal(signal.SIGINT, lambda _s, _f: gate.shutdown())
        signal.signal(signal.SIGHUP, lambda _s, _f: gate.server.call_soon(gate.reload))
    gate.serve_forever()
    return 0
