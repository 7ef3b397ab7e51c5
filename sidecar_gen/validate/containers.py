"""Validation rules for container references, checked against the compose project.

A command's `container:` (and `default_container`) is a key of `containers:`, else a compose
service, else a literal container name; a `containers:` value is a literal container name.
With the project's compose files at hand, a name compose will never create is an error (the
command could never run); a name compose derives from the checkout's folder
(`<folder>-<service>-1`) is a warning (it breaks in a checkout under another name). Without
compose files nothing can be checked, and a reference outside `containers:` gets a warning
saying so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sidecar_gen.compose.project import ProjectNames
from sidecar_gen.validate.findings import Finding, Severity, json_path_of
from sidecar_gen.yamlio import Loaded, position

_CONTAINER_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Parts = tuple[str | int, ...]


def _hint(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(options)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _folder_warning(names: ProjectNames, name: str, what: str) -> str | None:
    service = names.generated_by(name)
    if service is None or names.name_source != "folder":
        return None
    return (f"{what} '{name}' is the name compose gives service '{service}' in a folder called "
            f"'{names.project}': it breaks in a checkout under another name; route by the "
            f"service instead (container: {service})")


def container_findings(loaded: Loaded, names: ProjectNames | None) -> Iterator[Finding]:
    """Findings about container references and the `containers:` map."""
    doc = loaded.plain
    if not isinstance(doc, dict):
        return
    containers = _mapping(doc.get("containers"))

    def finding(parts: Parts, rule: str, message: str,
                severity: Severity = Severity.ERROR, *, key: bool = False) -> Finding:
        line, col = position(loaded.data, parts, key=key)
        return Finding(loaded.path, line, col, rule, message, severity,
                       json_path=json_path_of(parts))

    refs: list[tuple[str, Parts]] = []
    default = doc.get("default_container")
    if isinstance(default, str):
        refs.append((default, ("default_container",)))
    for name, spec in _mapping(doc.get("commands")).items():
        if isinstance(spec, dict) and isinstance(spec.get("container"), str):
            refs.append((spec["container"], ("commands", name, "container")))
    for ref, parts in refs:
        if ref in containers or not _CONTAINER_REF.match(ref):
            continue  # resolved through the map, or already a schema error
        yield from _reference(ref, parts, containers, names, finding)
    if names is not None:
        for logical, value in containers.items():
            if isinstance(value, str) and _CONTAINER_REF.match(value):
                yield from _literal(value, ("containers", logical), names, finding)
        project = _mapping(doc.get("sidecar")).get("project")
        if isinstance(project, str) and names.project and project != names.project:
            yield finding(("sidecar", "project"), "project-mismatch",
                          f"sidecar.project '{project}' is not this compose project's name "
                          f"('{names.project}'): no service would be found; remove it (the "
                          "gate serves the compose project it runs in)")
        elif isinstance(project, str) and names.name_source == "folder":
            yield finding(("sidecar", "project"), "folder-dependent-name",
                          f"sidecar.project '{project}' is this checkout's folder name: it "
                          "breaks in a checkout under another name; remove it (the gate "
                          "serves the compose project it runs in)", Severity.WARNING)
    used = {ref for ref, _ in refs}
    for logical in containers:
        if logical not in used:
            yield finding(("containers", logical), "unused-container",
                          f"container '{logical}' is not used by any command",
                          Severity.WARNING, key=True)


def _reference(ref: str, parts: Parts, containers: dict[Any, Any],
               names: ProjectNames | None,
               finding: Callable[..., Finding]) -> Iterator[Finding]:
    if names is None:
        yield finding(parts, "container-unchecked",
                      f"container '{ref}' is not in containers and was not checked: no compose "
                      f"project was read for this file (pass --compose FILE)"
                      f"{_hint(ref, map(str, containers))}", Severity.WARNING)
        return
    if ref in names.services or names.creates(ref):
        warning = _folder_warning(names, ref, "container")
        if warning:
            yield finding(parts, "folder-dependent-name", warning, Severity.WARNING)
        return
    where = f" or a service of {names.source}" if names.source else ""
    yield finding(parts, "unknown-container",
                  f"container '{ref}' is not in containers{where}, nor a container compose "
                  f"creates{_hint(ref, [*map(str, containers), *names.services])}")


def _literal(value: str, parts: Parts, names: ProjectNames,
             finding: Callable[..., Finding]) -> Iterator[Finding]:
    if names.creates(value):
        warning = _folder_warning(names, value, "container name")
        if warning:
            yield finding(parts, "folder-dependent-name", warning, Severity.WARNING)
        return
    looks_like = next((s for s in sorted(names.services)
                       if re.search(rf"[-_]{re.escape(s)}[-_][0-9]+$", value)), None)
    if looks_like:
        hint = (f"; it looks like service '{looks_like}' in a project called otherwise: route "
                f"by the service instead (container: {looks_like})")
    else:
        hint = _hint(value, [*names.containers, *names.services])
    yield finding(parts, "unknown-container-name",
                  f"compose never creates a container named '{value}' in this project "
                  f"('{names.project}'){hint}")
