"""Finding and loading bridge.yaml for the commands that act on it."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar_gen.compose.project import ProjectNames
from sidecar_gen.errors import ConfigError
from sidecar_gen.model import Bridge, bridge_from_plain
from sidecar_gen.runtime import cache
from sidecar_gen.validate.bridge import load_validated, load_validated_text
from sidecar_gen.validate.findings import Finding, Severity


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path:
    """The bridge.yaml every command uses: `explicit`, else the dispatcher's lookup
    (`BRIDGE_CONFIG`, else `$SIDECAR_CONFIG_DIR/bridge.yaml`, else `./.sidecar/bridge.yaml`)."""
    if explicit is not None:
        return explicit
    # Relative to "." unless asked: messages then name the file as the user would.
    return Path(cache.find_config(os.environ, str(cwd) if cwd else "."))


def load_bridge(path: Path, names: ProjectNames | None = None) -> Bridge:
    """Load and fully validate bridge.yaml.

    Raises InputError (exit 2) when the file cannot be read and ConfigError (exit 1, with
    `.findings`) when it has errors. Warnings do not stop loading.
    """
    loaded, findings = load_validated(path, names)
    return _bridge(str(path), loaded.plain, findings)


def bridge_from_text(text: str, source: str) -> Bridge:
    """`load_bridge` for text already read (the gate hashes exactly the bytes it loads)."""
    loaded, findings = load_validated_text(text, source)
    return _bridge(source, loaded.plain, findings)


def _bridge(source: str, plain: object, findings: list[Finding]) -> Bridge:
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors or not isinstance(plain, dict):
        first = errors[0] if errors else None
        summary = (f"{len(errors)} error(s), first at line {first.line}: {first.message}"
                   if first else "not a valid bridge.yaml")
        raise ConfigError(source, summary, list(errors))
    return bridge_from_plain(plain)
