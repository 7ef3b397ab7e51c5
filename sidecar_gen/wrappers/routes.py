"""Compile a validated bridge.yaml into the route cache the dispatcher reads on every command.

The cache is a `marshal` file of `RouteTable.to_record()` (`marshal` is builtin, loading it costs
well under a millisecond), stamped with bridge.yaml's (st_mtime_ns, st_size, st_ino) so the
dispatcher notices edits and calls `refresh_routes` again (its slow path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sidecar_gen.config import load_bridge
from sidecar_gen.errors import InputError
from sidecar_gen.model import Bridge
from sidecar_gen.runtime import cache
from sidecar_gen.runtime.contract import RouteTable


def compile_routes(bridge: Bridge, config: str, stamp: cache.Stamp) -> RouteTable:
    """The table the dispatcher reads: bridge.yaml's routes, stamped with the version read."""
    return RouteTable(config, stamp, bridge.commands, bridge.containers,
                      default=bridge.default_container, project=bridge.stack.project)


def refresh_routes(
    config: Path, environ: Mapping[str, str] | None = None
) -> tuple[RouteTable, str | None]:
    """Validate `config`, compile it and write the cache.

    Returns the routes and the cache file written (None when no cache location is writable: the
    dispatcher then works, only slower). Raises ConfigError for an invalid file and InputError
    for a missing or unreadable one.
    """
    env = os.environ if environ is None else environ
    absolute = os.path.abspath(config)
    try:
        before = os.stat(absolute)
    except OSError as exc:
        raise InputError(str(config), exc.strerror or "cannot read") from None
    bridge = load_bridge(Path(absolute))
    routes = compile_routes(bridge, absolute, cache.stamp_of(before))
    # An edit while we were loading must not be cached under the new stamp: keep the old one
    # so the next command recompiles.
    return routes, cache.store(routes, env)
