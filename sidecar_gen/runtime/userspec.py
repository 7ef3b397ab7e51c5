"""`user: "${PUID}:${PGID}"` in bridge.yaml: run a routed command as the Claude container's user.

Shared by the dispatcher (which fills in its own environment, else its own ids: the claude user
is PUID:PGID after the entrypoint's remap) and the gate (which fills in its environment only,
and allows nothing for a placeholder it cannot fill). Stdlib-only: on the dispatcher's hot path.
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
