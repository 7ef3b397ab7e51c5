"""The running broker: options, the policy built from them, the listener and the server.

`run_broker(BrokerOptions(...))` is the `sidecar broker` command (and `python -m
sidecar_gen.broker`): it forbids core dumps before any secret is read, then serves until
SIGTERM or SIGINT. `Broker` is the same without the process-wide parts (tests run it in a
thread).
"""

from __future__ import annotations

import signal
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sidecar_gen.broker.audit import AuditLog
from sidecar_gen.broker.credentials import load_credentials
from sidecar_gen.broker.decide import DEFAULT_HOSTS, BrokerPolicy, RepoSpecError, parse_repo_spec
from sidecar_gen.broker.hardening import forbid_core_dumps
from sidecar_gen.broker.origin import parse_origin
from sidecar_gen.broker.server import BrokerLimits, BrokerServer
from sidecar_gen.broker.upstream import tls_context
from sidecar_gen.errors import InputError
from sidecar_gen.gate.server import bind
from sidecar_gen.runtime.names import ANTHROPIC_UPSTREAM, BROKER_PORT, GITHUB_UPSTREAM

PORT = BROKER_PORT
DEFAULT_LISTEN = f"tcp://0.0.0.0:{PORT}"
DEFAULT_UPSTREAM = ANTHROPIC_UPSTREAM
DEFAULT_GITHUB = GITHUB_UPSTREAM


@dataclass
class BrokerOptions:
    """Everything `Broker` needs; the CLI fills it from flags."""

    listen: str = DEFAULT_LISTEN
    upstream: str = DEFAULT_UPSTREAM
    github_upstream: str = DEFAULT_GITHUB
    secrets: Path | None = None  # folder of files named by kind (api-key, oauth-token, ...)
    ca_file: Path | None = None  # extra CAs (PEM) trusted for the upstreams
    repositories: tuple[str, ...] = ()  # OWNER/REPO or OWNER/REPO:push
    hosts: tuple[str, ...] = ()  # names the broker answers to, besides DEFAULT_HOSTS
    log: IO[str] | None = None  # the audit record; None: stderr
    limits: BrokerLimits = field(default_factory=BrokerLimits)


def build_policy(options: BrokerOptions) -> tuple[BrokerPolicy, ssl.SSLContext]:
    """The decision inputs and the TLS context; InputError for any bad option or file."""
    repositories: dict[str, bool] = {}
    for spec in options.repositories:
        try:
            name, push = parse_repo_spec(spec)
        except RepoSpecError as exc:
            raise InputError("--github-repo", str(exc)) from None
        repositories[name] = repositories.get(name, False) or push
    hosts = tuple(dict.fromkeys([*DEFAULT_HOSTS, *(h.lower() for h in options.hosts)]))
    policy = BrokerPolicy(
        anthropic=parse_origin(options.upstream, "--upstream"),
        github=parse_origin(options.github_upstream, "--github-upstream"),
        credentials=load_credentials(options.secrets),
        repositories=repositories, hosts=hosts)
    return policy, tls_context(options.ca_file)


class Broker:
    """A broker ready to serve: `serve_forever()` in some thread, `shutdown()` from any."""

    def __init__(self, options: BrokerOptions) -> None:
        self.policy, context = build_policy(options)
        self.log = AuditLog(options.log if options.log is not None else sys.stderr)
        sock, self.address = bind(options.listen)
        self.server = BrokerServer(sock, self.policy, context, self.log, options.limits)

    def describe(self) -> str:
        """The start-up line: where, to what, with which kinds of credential (never values)."""
        policy = self.policy
        kinds = ", ".join(policy.credentials.kinds()) or "none"
        repos = ", ".join(f"{name}{' (push)' if push else ''}"
                          for name, push in sorted(policy.repositories.items())) or "none"
        return (f"sidecar broker: listening on {self.address}, upstream {policy.anthropic}, "
                f"git upstream {policy.github}, credentials: {kinds}, repositories: {repos}")

    def serve_forever(self) -> None:
        """Serve until `shutdown()`."""
        self.server.serve_forever()

    def shutdown(self) -> None:
        """Stop accepting (from any thread or a signal handler)."""
        self.server.shutdown()


def run_broker(options: BrokerOptions, *,
               notice: Callable[[str], None] | None = None) -> int:
    """Run the broker until SIGTERM or SIGINT; return the exit code (0)."""
    problems = forbid_core_dumps()  # before any secret is in memory
    broker = Broker(options)
    if notice is not None:
        notice(broker.describe())
        if problems:
            notice(f"sidecar broker: warning: core dumps could not be forbidden: "
                   f"{'; '.join(problems)}")
    if threading.current_thread() is threading.main_thread():
        # As a container's PID 1 the default action of SIGTERM is ignored.
        signal.signal(signal.SIGTERM, lambda _s, _f: broker.shutdown())
        signal.signal(signal.SIGINT, lambda _s, _f: broker.shutdown())
    broker.serve_forever()
    return 0
