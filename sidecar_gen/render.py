"""`sidecar render`: generate the sidecar stack from bridge.yaml, idempotently.

Targets:
- `.sidecar/compose.yml`: the services `claude`, `sidecar-gate`, `sidecar-broker` (unless
  `sidecar.broker: false`) and (optionally) `viewer`, plus the named volumes (Claude's config,
  the approved policy, the broker's secret). Generated whole, with a checksum line.
- `.sidecar/allowed-domains.txt`: the egress allowlist. Generated whole, with a checksum line.
- the project's compose file: gains one `include:` entry for `.sidecar/compose.yml` (created as
  `compose.yml` when the project has none). Nothing else in it is touched.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from sidecar_gen import __version__, templating
from sidecar_gen.compose.project import ComposeProject, find_compose_file, load_project
from sidecar_gen.errors import SidecarError
from sidecar_gen.fileplan import Change, FileStatus, apply, plan_edit, plan_generated, with_checksum
from sidecar_gen.firewall import state as firewall
from sidecar_gen.firewall.toolchains import allowed_domains
from sidecar_gen.fsutil import read_text_file
from sidecar_gen.model import Bridge
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import (
    CONFIG_DIR,
    CONFIG_NAME,
    CONFIG_VOLUME,
    DOMAINS_NAME,
    GENERATED_COMPOSE,
    MANAGED_SERVICES,
    POLICY_VOLUME,
    SECRETS_VOLUME,
)
from sidecar_gen.trust.inputs import existing_compose_files
from sidecar_gen.yamlio import load_text

INCLUDE_ENTRY = f"{CONFIG_DIR}/{GENERATED_COMPOSE}"


class RenderError(SidecarError):
    """The project cannot take the generated stack as it is (e.g. a name collision)."""


@dataclass
class RenderResult:
    """The plan (and, unless checking, what was written)."""

    changes: list[Change] = field(default_factory=list)
    project: ComposeProject | None = None
    applied: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def would_change(self) -> bool:
        """True when at least one file was (or would be) written."""
        return any(c.writes for c in self.changes)

    @property
    def skipped(self) -> list[Change]:
        """Targets kept because they were edited by hand."""
        return [c for c in self.changes if c.status is FileStatus.SKIPPED]


def domains_text(commands: Iterable[str], extra: Iterable[str] = (), *,
                 broker: bool = True) -> str:
    """allowed-domains.txt: defaults (Claude Code's own hosts, only without the broker), the
    routed toolchains' presets, the user's extras."""
    text = templating.render(
        "allowed-domains.txt.j2",
        domains=allowed_domains(commands, extra, broker=broker),
        broker=broker,
        version=__version__,
    )
    return with_checksum(text)


def shadowed_files(bridge: Bridge, project_dir: Path) -> list[str]:
    """Shadow list entries that exist: mounting /dev/null over a missing file would create it."""
    out = []
    for rel in bridge.stack.shadow:
        clean = posixpath.normpath(rel)
        if clean.startswith("../") or clean == "..":
            continue
        if (project_dir / clean).exists():
            out.append(clean)
    return out


def readonly_files(project_dir: Path, project_file: Path, shadowed: list[str]) -> list[str]:
    """The project's compose files and `.env` (where they exist, inside the project, not
    already shadowed or under .sidecar/), relative: mounted read-only into claude."""
    root = project_dir.resolve()
    out: set[str] = set()
    for path in [project_file, *existing_compose_files(project_dir)]:
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            continue  # outside the project: not in the claude container anyway
        if rel == "." or rel.split("/", 1)[0] == CONFIG_DIR or rel in shadowed:
            continue
        out.add(rel.replace("$", "$$"))  # compose would interpolate a `$` in a path
    return sorted(out)


def logging_options(bridge: Bridge) -> str:
    """The `logging:` of every service render generates, as one flow mapping: json-file (the
    driver `docker compose logs` reads everywhere) rotated as `sidecar.limits.logs` says."""
    logs = bridge.stack.limits.logs
    return (f'{{driver: json-file, options: {{max-size: "{logs.max_size}", '
            f'max-file: "{logs.max_files}"}}}}')


def render_compose(bridge: Bridge, project_dir: Path, project_file: str) -> str:
    """The generated `.sidecar/compose.yml`."""
    shadowed = shadowed_files(bridge, project_dir)
    text = templating.render(
        "compose.yml.j2",
        stack=bridge.stack,
        version=__version__,
        project_file=project_file,
        config_dir=posixpath.join(bridge.stack.workspace, CONFIG_DIR),
        shadowed=shadowed,
        readonly=readonly_files(project_dir, project_dir / project_file, shadowed),
        firewall_switch=firewall.ENABLED_ENV,
        firewall_options=firewall.environment(bridge.stack.firewall),
        role_label=contract.ROLE_LABEL,
        roles={"claude": contract.ROLE_CLAUDE, "gate": contract.ROLE_GATE,
               "viewer": contract.ROLE_VIEWER, "broker": contract.ROLE_BROKER},
        logging=logging_options(bridge),
    )
    return with_checksum(text)


def _check_collisions(project: ComposeProject | None, data: Any) -> None:
    if project is None:
        return
    taken = sorted(set(MANAGED_SERVICES) & set(project.services))
    if taken:
        raise RenderError(
            f"{project.file.name}: service name(s) {', '.join(taken)} are used by your project; "
            "sidecar render needs them for the Claude stack")
    volumes = data.get("volumes") if isinstance(data, dict) else None
    for name in (CONFIG_VOLUME, POLICY_VOLUME, SECRETS_VOLUME):
        if isinstance(volumes, dict) and name in volumes:
            raise RenderError(f"{project.file.name}: the volume name {name} is taken")


def _newline(text: str) -> str:
    """The file's own line end (CRLF or LF), for the lines render adds."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _with_include(text: str, data: Any, file: Path) -> str:
    """The project compose text with the include entry added, touching nothing else: its line
    ends, byte order mark and final newline (or the lack of one) stay as they are."""
    nl = _newline(text)
    include = data.get("include") if isinstance(data, CommentedMap) else None
    if include is None:
        block = (f"# The Claude Code sidecar (claude, sidecar-gate): generated by "
                 f"`sidecar render`.{nl}include:{nl}  - {INCLUDE_ENTRY}")
        bare = text.lstrip("\ufeff")
        if not bare:
            return f"{text}{block}{nl}"
        if text.endswith("\n"):
            return f"{text}{nl}{block}{nl}"
        return f"{text}{nl}{nl}{block}"  # no final newline before: none after
    entries: list[Any] = []
    if isinstance(include, CommentedSeq):
        for item in include:
            if isinstance(item, str):
                entries.append(item)
            elif isinstance(item, dict):
                path = item.get("path")
                entries.extend(path if isinstance(path, list) else [path])
    if INCLUDE_ENTRY in entries or f"./{INCLUDE_ENTRY}" in entries:
        return text
    if not isinstance(include, CommentedSeq) or include.fa.flow_style() or not include:
        raise RenderError(f"{file.name}: add `{INCLUDE_ENTRY}` to its include: list "
                          "(render only edits a block-style list)")
    key_line, _ = data.lc.key("include")
    _, item_col = include.lc.item(0)
    # Split on LF only: YAML's line numbers count LF (a CRLF is one line end).
    lines = text.split("\n")
    # Insert as the first item, right under `include:`, with the list's own indentation.
    carriage = "\r" if nl == "\r\n" else ""
    lines.insert(key_line + 1, f"{' ' * max(item_col - 2, 0)}- {INCLUDE_ENTRY}{carriage}")
    return "\n".join(lines)


def _domains_change(change: Change) -> Change:
    if change.status is not FileStatus.SKIPPED:
        return change
    # The usual reason for editing the allowlist: adding a domain. Say where that belongs.
    return replace(change, reason="edited by hand: put extra domains in bridge.yaml under "
                   "sidecar.firewall.domains, then use --force")


def plan_render(directory: Path, *, config: Path | None = None, force: bool = False,
                prefer_cli: bool = False) -> RenderResult:
    """Plan every target; nothing is written."""
    config_path = config or directory / CONFIG_DIR / CONFIG_NAME
    # The whole project compose loads (override files, COMPOSE_FILE) for the name checks; the
    # include line goes into the main file.
    project = load_project(directory, prefer_cli=prefer_cli)
    compose_file = find_compose_file(directory) or (project.file if project else None)
    result = RenderResult(project=project)
    target_file = compose_file or directory / "compose.yml"
    current = read_text_file(compose_file) if compose_file else ""
    data: Any = None
    if current:
        loaded = load_text(current, str(target_file))
        if loaded.data is None:
            first = loaded.findings[0] if loaded.findings else None
            where = f" line {first.line}: {first.message}" if first else ""
            raise RenderError(f"{target_file}: cannot read it as YAML{where}")
        data = loaded.data
    _check_collisions(project, data)
    # Validation (jsonschema) is imported here: `sidecar init` renders the allowlist without it.
    from sidecar_gen.config import load_bridge

    bridge = load_bridge(config_path, project.names() if project else None)
    if not bridge.commands:
        result.notes.append(f"{config_path.name} routes no command: Claude gets its own "
                            "firewalled container, and every command runs there")
    sidecar_dir = config_path.parent
    result.changes = [
        plan_generated(sidecar_dir / GENERATED_COMPOSE,
                       render_compose(bridge, directory, target_file.name), force=force),
        _domains_change(plan_generated(
            sidecar_dir / DOMAINS_NAME,
            domains_text(bridge.commands, bridge.stack.firewall.domains,
                         broker=bridge.stack.broker.enabled), force=force)),
        plan_edit(target_file, current if compose_file else None,
                  _with_include(current, data, target_file)),
    ]
    return result


def run_render(directory: Path, *, config: Path | None = None, force: bool = False,
               check: bool = False) -> RenderResult:
    """Render the stack into `directory` (or, with `check`, only plan it)."""
    result = plan_render(directory, config=config, force=force)
    if not check:
        apply(result.changes)
        result.applied = True
    return result
