"""`sidecar up` in a compose project with no `.sidecar/` yet: init, render, the plan, undo.

The first run writes what `sidecar init` and `sidecar render` would (the same core functions,
not subprocesses), then describes on one screen what starting means: the routes per service,
the domains Claude may reach, the services the sidecar adds and the files the approval covers.
When the user declines, every file it wrote is removed and the compose file it added its
`include:` line to gets its old bytes back, so the next `sidecar up` asks again instead of
approving silently what a declined run left behind.

Only a project without a `.sidecar/` folder takes this path: nothing the user wrote there can
be overwritten, and the compose file is only ever given its one added line (render's plan).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar_gen.runtime import atomic
from sidecar_gen.runtime.escape import escape
from sidecar_gen.runtime.names import CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME, GENERATED_COMPOSE

if TYPE_CHECKING:  # the rest is imported by the first run only: the daily `up` imports this
    from sidecar_gen.fileplan import Change
    from sidecar_gen.trust.compare import Comparison


def needs_first_run(directory: Path) -> bool:
    """True when `directory` has no `.sidecar/` at all (not even a link or a file by that
    name: anything there is the user's, and the ordinary `up` reports on it)."""
    try:
        (directory / CONFIG_DIR).lstat()
    except FileNotFoundError:
        return True
    return False


def has_compose_project(directory: Path, env: dict[str, str]) -> bool:
    """True when compose finds a compose file for `directory` (its default names, or
    `COMPOSE_FILE` from the environment or `.env`): a first run sets up an existing project,
    it never makes one up in a folder that has none."""
    from sidecar_gen.trust.inputs import compose_inputs

    return any(item.kind == "compose" and item.path.is_file()
               for item in compose_inputs(directory, env))


@dataclass
class FirstRun:
    """What the first run wrote, and how to take it back."""

    directory: Path
    written: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def undo(self) -> None:
        """Put the project back as it was: created files removed (then `.sidecar/`, when it is
        empty), changed files given their old text back."""
        from sidecar_gen.fileplan import FileStatus

        for change in reversed(self.written):
            if change.status is FileStatus.CREATED:
                with contextlib.suppress(FileNotFoundError):
                    change.path.unlink()
            elif change.status is FileStatus.CHANGED and change.old is not None:
                mode = stat.S_IMODE(change.path.stat().st_mode)
                atomic.write_atomic(str(change.path), change.old.encode("utf-8"), mode)
        with contextlib.suppress(OSError):
            (self.directory / CONFIG_DIR).rmdir()


def write_first_run(directory: Path, *, probe: bool = True, image: str | None = None,
                    environ: dict[str, str] | None = None) -> FirstRun:
    """Run init and render in `directory` (which has no `.sidecar/`); what they wrote.

    A failure of render takes back what init wrote before the error is raised.
    """
    from sidecar_gen.render import run_render
    from sidecar_gen.scaffold.proposal import run_init

    run = FirstRun(directory)
    init = run_init(directory, probe=probe, environ=environ, image=image)
    run.written += [change for change in init.files if change.writes]
    try:
        render = run_render(directory)
    except BaseException:
        run.undo()
        raise
    run.written += [change for change in render.changes if change.writes]
    run.notes += render.notes
    return run


@dataclass(frozen=True)
class Plan:
    """The first run's plan, as data: what the screen shows."""

    routes: dict[str, list[str]]  # service (or container) -> command names
    domains: list[str]
    firewall: bool
    added: list[str]  # services the sidecar adds to the project
    written: list[str]  # files written, relative to the project
    approve: list[str]  # the approval's summary lines (escaped)
    image: str

    def lines(self) -> list[str]:
        """The plan for the terminal, every name escaped (they come from the project)."""
        out = ["sidecar: first run in this project: wrote " +
               (", ".join(escape(name) for name in self.written) or "nothing")]
        out.append("routes (the command Claude types -> the service that runs it):")
        if self.routes:
            for service, names in sorted(self.routes.items()):
                out.append(f"  {escape(service)}: {escape(', '.join(sorted(names)))}")
        else:
            out.append("  none: every command runs in Claude's own container")
        if self.firewall:
            out.append(f"Claude may reach ({len(self.domains)} domains, and GitHub): "
                       f"{escape(', '.join(self.domains))}")
        else:
            out.append("egress firewall: off (Claude may reach any address)")
        out.append(f"services added: {escape(', '.join(self.added))} "
                   f"(image {escape(self.image)})")
        out.append("approving records (for the next `sidecar up` to compare against):")
        out += [f"  {line}" for line in self.approve]
        return out


def make_plan(run: FirstRun, comparison: Comparison) -> Plan:
    """The plan of a first run from what it wrote and the comparison with no approval."""
    from sidecar_gen.config import load_bridge  # the validator: only for a first run
    from sidecar_gen.fileplan import FileStatus
    from sidecar_gen.yamlio import load_plain

    directory = run.directory
    bridge = load_bridge(directory / CONFIG_DIR / CONFIG_NAME)
    routes: dict[str, list[str]] = {}
    for name, route in bridge.commands.items():
        routes.setdefault(bridge.resolve_container(route.container), []).append(name)
    from sidecar_gen.firewall.allowlist import parse_domains

    domains_path = directory / CONFIG_DIR / DOMAINS_NAME
    domains = parse_domains(domains_path.read_text(encoding="utf-8"))[0] \
        if domains_path.is_file() else []
    generated = directory / CONFIG_DIR / GENERATED_COMPOSE
    added: list[str] = []
    if generated.is_file():
        doc = load_plain(generated.read_text(encoding="utf-8"), str(generated)).data
        services = doc.get("services") if isinstance(doc, dict) else None
        added = sorted(str(name) for name in services) if isinstance(services, dict) else []
    written = [os.path.relpath(change.path, directory) +
               (" (include: line added)" if change.status is FileStatus.CHANGED else "")
               for change in run.written]
    return Plan(routes=routes, domains=domains, firewall=bridge.stack.firewall.enabled,
                added=added, written=written, approve=comparison.summary(),
                image=bridge.stack.image)
