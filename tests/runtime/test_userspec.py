"""`runtime/userspec`: a route's `user:` with PUID/PGID placeholders, for the dispatcher and the
gate."""

from __future__ import annotations

import os

from sidecar_gen.runtime.userspec import expand_user


def test_user_placeholders() -> None:
    env = {"PUID": "1234", "PGID": "99"}
    assert expand_user("${PUID}:${PGID}", env) == "1234:99"
    assert expand_user("${PUID}", env) == "1234"
    assert expand_user("www-data:${PGID}", env) == "www-data:99"
    assert expand_user("1000:1000", {}) == "1000:1000"
    # The dispatcher falls back to its own ids (the claude user is PUID:PGID after the remap).
    assert expand_user("${PUID}:${PGID}", {}) == f"{os.getuid()}:{os.getgid()}"
    # The gate does not: a placeholder it cannot fill allows nothing.
    assert expand_user("${PUID}:${PGID}", {}, own_ids=False) is None
    assert expand_user("${PUID}", {"PUID": "root"}) is None
