"""`user:` in bridge.yaml: whose ids a routed command runs with, and the home it gets.

`user: "${PUID}:${PGID}"` runs a command as the Claude container's user. Shared by the
dispatcher (which fills in its own environment, else its own ids: the claude user is PUID:PGID
after the entrypoint's remap) and the gate (which fills in its environment only, and allows
nothing for a placeholder it cannot fill). Stdlib-only: on the dispatcher's hot path.

A command run as a user id (a number, e.g. the filled-in `${PUID}`) may run as a uid the
container has no account for; Docker then sets `HOME=/`, which that uid cannot write, and
every program that keeps a cache or settings in `$HOME` fails. The dispatcher gives such a
command `HOME=FALLBACK_HOME` (`home_for`), and the gate accepts exactly that value.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

PLACEHOLDERS = {"${PUID}": ("PUID", os.getuid), "${PGID}": ("PGID", os.getgid)}


def expand_user(spec: str, environ: Mapping[str, str], *, own_ids: bool = True) -> str | None:
    """Replace `${PUID}`/`${PGID}` by the environment's numbers (else, with `own_ids`, this
    process's ids). None when a placeholder cannot be filled or its value is not a number."""
    if "$" not in spec:
        return spec
    out = spec
    for token, (name, own) in PLACEHOLDERS.items():
        if token not in out:
            continue
        value = environ.get(name, "")
        if not value and own_ids:
            value = str(own())
        if not value.isdigit():
            return None
        out = out.replace(token, value)
    return out


HOME_ENV = "HOME"
# Exists and is writable by every uid in every image (sticky, world-writable); created by no one.
FALLBACK_HOME = "/tmp"


def home_for(user: str | None, passed: tuple[str, ...] | list[str] = ()) -> str | None:
    """`FALLBACK_HOME` for a command run as a non-root uid given as a number (`"1000"`,
    `"1000:1000"`, a filled-in `${PUID}`), unless bridge.yaml passes `HOME` through; else None
    (a named user, and root, have their own home)."""
    if not user or HOME_ENV in passed:
        return None
    uid = user.partition(":")[0]
    return FALLBACK_HOME if uid.isdigit() and int(uid) != 0 else None
