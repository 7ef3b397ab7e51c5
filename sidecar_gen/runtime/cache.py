"""The route cache reader: bridge.yaml compiled into a `marshal` file the dispatcher loads fast.

`sidecar_gen.wrappers.routes` writes the cache; this module finds the config, locates its cache and
checks that the cache still matches the file (stamp = st_mtime_ns, st_size, st_ino), so an edit
of bridge.yaml takes effect on the next command: `load_routes` then validates and recompiles it
(the slow path, which needs the whole package).
"""

from __future__ import annotations

import marshal
import os
import sys

from sidecar_gen.runtime.contract import RouteTable, fnv1a
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.names import BRIDGE_CONFIG_ENV, CONFIG_DIR, CONFIG_DIR_ENV, CONFIG_NAME

# typing and collections.abc cost milliseconds to import on every command: types are for mypy only
# (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# Extra sys.path entries (the environment's site-packages) for the slow path; the launcher
# written by `install-wrappers` sets them (as `dispatch.SLOW_PATH`, this very list).
SLOW_PATH: list[str] = []
Stamp = tuple[int, int, int]


def find_config(environ: Mapping[str, str], cwd: str) -> str:
    """`BRIDGE_CONFIG`, else `$SIDECAR_CONFIG_DIR/bridge.yaml`, else `$PWD/.sidecar/bridge.yaml`."""
    explicit = environ.get(BRIDGE_CONFIG_ENV)
    if explicit:
        return os.path.join(cwd, explicit)
    config_dir = environ.get(CONFIG_DIR_ENV)
    if config_dir:
        return os.path.join(cwd, config_dir, CONFIG_NAME)
    return os.path.join(cwd, CONFIG_DIR, CONFIG_NAME)


def stamp_of(st: os.stat_result) -> Stamp:
    """What identifies one version of bridge.yaml."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


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
    return os.path.join(directory, f"routes-{fnv1a(config):016x}.marshal")


def load(config: str, stamp: Stamp, environ: Mapping[str, str]) -> RouteTable | None:
    """The cached table when it was compiled from this very version of `config`, else None."""
    path = cache_file(config, environ)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            record = marshal.load(handle)  # noqa: S302 - our own per-user file
        table = RouteTable.from_record(record)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if table.config != config or tuple(table.stamp) != stamp:
        return None
    return table


def store(table: RouteTable, environ: Mapping[str, str]) -> str | None:
    """Write `table` atomically; return the path, or None when no cache location is writable."""
    path = cache_file(table.config, environ)
    if path is None:
        return None
    from sidecar_gen.runtime import atomic  # the slow path only: the dispatcher reads

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic.write_atomic(path, marshal.dumps(table.to_record()), 0o600, durable=False)
    except OSError:
        return None
    return path


def load_routes(config: str | None, environ: Mapping[str, str], cwd: str) -> RouteTable:
    """The routes of the active bridge.yaml (`config`, else `find_config`): from the cache when
    it matches the file, else validated and recompiled (DispatchError when that fails)."""
    path = os.path.abspath(os.path.join(cwd, config) if config else find_config(environ, cwd))
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DispatchError(
            f"cannot read bridge.yaml at {path}: {exc.strerror}"
            " (set BRIDGE_CONFIG or SIDECAR_CONFIG_DIR, or run from the project directory)"
        ) from None
    routes = load(path, stamp_of(st), environ)
    return routes if routes is not None else _recompile(path, environ)


def _recompile(path: str, environ: Mapping[str, str]) -> RouteTable:
    # Validation needs the full package and its dependencies, which the launcher located.
    for entry in SLOW_PATH:
        if entry not in sys.path:
            sys.path.append(entry)
    try:
        from pathlib import Path

        from sidecar_gen.errors import SidecarError
        from sidecar_gen.wrappers.routes import refresh_routes
    except ImportError as exc:
        raise DispatchError(
            f"cannot validate {path}: {exc} (run `sidecar install-wrappers` again)") from None
    try:
        routes, _written = refresh_routes(Path(path), environ)
    except SidecarError as exc:
        raise DispatchError(f"invalid bridge.yaml: {exc.message}") from None
    return routes
