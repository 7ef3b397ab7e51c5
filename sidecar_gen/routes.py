"""Compile a validated bridge.yaml into the route cache the dispatcher reads on every command.

The cache is a `marshal` file of plain dicts and tuples (`marshal` is builtin, loading it costs
well under a millisecond), stamped with bridge.yaml's (st_mtime_ns, st_size, st_ino) so the
dispatcher notices edits and calls `refresh_routes` again (its slow path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidecar_gen.config import load_bridge
from sidecar_gen.errors import InputError
from sidecar_gen.model import Bridge
from sidecar_gen.runtime import cache


def compile_routes(bridge: Bridge, config: str, stamp: cache.Stamp) -> dict[str, Any]:
    """The plain-data form of `bridge` the dispatcher reads."""
    commands = {
        name: {
            "container": cmd.container,
            "argv": tuple(cmd.argv),
            "workdir": cmd.workdir,
            "paths": tuple((str(a), str(b)) for a, b in cmd.paths),
            "user": cmd.user,
            "env": tuple(cmd.env),
            "tty": cmd.tty,
            "timeout": cmd.timeout,
        }
        for name, cmd in bridge.commands.items()
    }
    return {
        "v": cache.CACHE_VERSION,
        "config": config,
        "stamp": stamp,
        "commands": commands,
        "containers": dict(bridge.containers),
        "default": bridge.default_container,
        "project": bridge.stack.project,
    }


def refresh_routes(
    config: Path, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str | None]:
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
