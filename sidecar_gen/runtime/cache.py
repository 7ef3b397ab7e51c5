"""The route cache reader: bridge.yaml compiled into a `marshal` file the dispatcher loads fast.

`sidecar_gen.routes` writes the cache; this module finds the config, locates its cache and
checks that the cache still matches the file (stamp = st_mtime_ns, st_size, st_ino), so an edit
of bridge.yaml takes effect on the next command.
"""

from __future__ import annotations

import marshal
import os

# typing and collections.abc cost milliseconds to import on every command: types are for mypy only
# (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CACHE_VERSION = 1
CONFIG_NAME = "bridge.yaml"
Stamp = tuple[int, int, int]


def find_config(environ: Mapping[str, str], cwd: str) -> str:
    """`BRIDGE_CONFIG`, else `$SIDECAR_CONFIG_DIR/bridge.yaml`, else `$PWD/.sidecar/bridge.yaml`."""
    explicit = environ.get("BRIDGE_CONFIG")
    if explicit:
        return os.path.join(cwd, explicit)
    config_dir = environ.get("SIDECAR_CONFIG_DIR")
    if config_dir:
        return os.path.join(cwd, config_dir, CONFIG_NAME)
    return os.path.join(cwd, ".sidecar", CONFIG_NAME)


def stamp_of(st: os.stat_result) -> Stamp:
    """What identifies one version of bridge.yaml."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _fnv1a(text: str) -> str:
    # A stable short key for a path; hashlib would cost an import on every command.
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def cache_dir(environ: Mapping[str, str]) -> str | None:
    """`$XDG_CACHE_HOME/claude-sidecar`, else `~/.cache/claude-sidecar` (None without a home)."""
    base = environ.get("XDG_CACHE_HOME")
    if not base or not base.startswith("/"):
        home = environ.get("HOME") or os.path.expanduser("~")
        if not home.startswith("/"):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "claude-sidecar")


def cache_file(config: str, environ: Mapping[str, str]) -> str | None:
    """The cache file for the config at absolute path `config`."""
    directory = cache_dir(environ)
    if directory is None:
        return None
    return os.path.join(directory, f"routes-{_fnv1a(config)}.marshal")


def load(config: str, stamp: Stamp, environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The cached routes when they were compiled from this very version of `config`, else None."""
    path = cache_file(config, environ)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            routes = marshal.load(handle)  # noqa: S302 - our own per-user file
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if (
        not isinstance(routes, dict)
        or routes.get("v") != CACHE_VERSION
        or routes.get("config") != config
        or routes.get("stamp") != stamp
    ):
        return None
    return routes


def store(routes: dict[str, Any], environ: Mapping[str, str]) -> str | None:
    """Write `routes` atomically; return the path, or None when no cache location is writable."""
    path = cache_file(routes["config"], environ)
    if path is None:
        return None
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as handle:
            marshal.dump(routes, handle)
        os.replace(tmp, path)
    except OSError:
        try:  # noqa: SIM105 - contextlib is not imported on the hot path
            os.unlink(tmp)
        except OSError:
            pass
        return None
    return path
