"""Finding and loading bridge.yaml for the commands that act on it."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar_gen.errors import ConfigError
from sidecar_gen.findings import Severity
from sidecar_gen.model import Bridge, bridge_from_plain
from sidecar_gen.validate import ProjectNames, load_validated

CONFIG_NAME = "bridge.yaml"
CONFIG_DIR = ".sidecar"


def default_config_path(cwd: Path | None = None) -> Path:
    """`$SIDECAR_CONFIG_DIR/bridge.yaml`, else `./.sidecar/bridge.yaml`."""
    config_dir = os.environ.get("SIDECAR_CONFIG_DIR")
    if config_dir:
        return Path(config_dir) / CONFIG_NAME
    return (cwd or Path.cwd()) / CONFIG_DIR / CONFIG_NAME


def find_config(explicit: Path | None = None) -> Path:
    """The runtime lookup: explicit, else `BRIDGE_CONFIG`, else the default path."""
    if explicit is not None:
        return explicit
    env = os.environ.get("BRIDGE_CONFIG")
    if env:
        return Path(env)
    return default_config_path()


def load_bridge(path: Path, names: ProjectNames | None = None) -> Bridge:
    """Load and fully validate bridge.yaml.

    Raises InputError (exit 2) when the file cannot be read and ConfigError (exit 1, with
    `.findings`) when it has errors. Warnings do not stop loading.
    """
    loaded, findings = load_validated(path, names)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors or not isinstance(loaded.plain, dict):
        first = errors[0] if errors else None
        summary = (f"{len(errors)} error(s), first at line {first.line}: {first.message}"
                   if first else "not a valid bridge.yaml")
        raise ConfigError(str(path), summary, list(errors))
    return bridge_from_plain(loaded.plain)
