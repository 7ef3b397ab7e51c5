"""Hostile-agent tests of the claude container: PUID/PGID that the image uses for
something else are refused, the defaults stay, and the agent gains nothing from asking.

With PUID 998 the agent would be `sidecar-dns`, the forwarder's user: DNS to any resolver and
Docker's 127.0.0.11 (a tunnel), and it could kill the forwarder. With PGID 42 it would be in
`shadow`; with 5, in `tty` (the terminals of root's `docker compose exec` sessions).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from firewall.conftest import Claude
from firewall.probes import dns, resolves


@pytest.mark.parametrize(("puid", "pgid", "why"), [
    ("998", "42", "PUID 998 is used by the image (account sidecar-dns); PGID 42 is used by "
                  "the image (group shadow)"),
    ("65534", "5", "PUID 65534 is used by the image (account nobody); PGID 5 is used by the "
                   "image (group tty)"),
])
def test_reserved_ids_are_refused_and_the_defaults_stay(
        start_claude: Callable[..., Claude], puid: str, pgid: str, why: str) -> None:
    claude = start_claude(env={"PUID": puid, "PGID": pgid})
    assert (f"sidecar: {why}: refused, claude keeps 1000:1000 (set PUID/PGID to your own ids: "
            "id -u, id -g)") in claude.logs().splitlines()
    code, ids = claude.sh("id")
    assert (code, ids.strip()) == (0, "uid=1000(claude) gid=1000(claude) groups=1000(claude)")
    # Ready: the firewall enforces, so Claude Code starts, as the default ids.
    assert claude.health() == (0, "ready: the firewall is enforcing (uid 1000, gid 1000)")
    assert claude.claude_code() == (0, "claude-stub uid=1000 args=--version")
    # By effect: none of what those ids would give is the agent's.
    assert claude.sh("cat /etc/shadow")[0] != 0
    assert claude.sh("kill -0 $(cat /run/sidecar/firewall/dnsmasq.pid)")[0] != 0
    assert dns(claude, "secret.example", "127.0.0.11").startswith("REFUSED")
    assert resolves(claude, "blocked.test") == []
    assert claude.sh("kill -0 $(cat /run/sidecar/firewall/dnsmasq.pid)", user="root")[0] == 0


@pytest.mark.parametrize("pgid", ["20", "100"])
def test_groups_that_give_nothing_stay_usable(start_claude: Callable[..., Claude],
                                              pgid: str) -> None:
    # dialout (macOS's gid 20 is `staff`) and users own nothing in the image: claude joins them.
    claude = start_claude(env={"PUID": "501", "PGID": pgid})
    assert "refused" not in claude.logs()
    code, ids = claude.sh("id -u; id -g")
    assert (code, ids.split()) == (0, ["501", pgid])
    assert claude.claude_code() == (0, "claude-stub uid=501 args=--version")
