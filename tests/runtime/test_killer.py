"""`runtime/killer`: the cleanup exec stops exactly the processes that carry its token (run
here on real processes: the script needs only sh, tr, grep, kill and /proc)."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

from sidecar_gen.runtime import killer, names


def _started(token: str) -> subprocess.Popen[bytes]:
    """A command started the way the dispatcher starts one: the token in its environment,
    inherited by its children (`sh -c 'sleep 60; :'` keeps a shell and a child)."""
    env = {**os.environ, names.EXEC_TOKEN_ENV: token}
    return subprocess.Popen(["sh", "-c", "sleep 60 & wait"], env=env)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_the_kill_exec_stops_its_tokens_processes_and_nothing_else() -> None:
    mine, other = secrets.token_hex(16), secrets.token_hex(16)
    assert len(mine) == names.EXEC_TOKEN_HEX_DIGITS
    target, bystander = _started(mine), _started(other)
    try:
        deadline = time.monotonic() + 10
        while not (_children(target.pid) and _children(bystander.pid)):
            assert time.monotonic() < deadline, "the commands did not start"
            time.sleep(0.05)
        child = _children(target.pid)[0]
        done = subprocess.run(killer.kill_command(mine), timeout=30)
        assert done.returncode == 0
        assert target.wait(timeout=10) != 0
        assert not _alive(child)  # the command's own children too
        assert _alive(bystander.pid) and bystander.poll() is None
        # Nothing left with that token: the script says so (the command had ended by itself).
        again = subprocess.run(killer.kill_command(mine), timeout=30)
        assert again.returncode == killer.NOTHING_FOUND
    finally:
        for proc in (target, bystander):
            proc.kill()
            proc.wait()


def test_kill_script_refuses_a_non_hex_token() -> None:
    for token in ("", "abc;reboot", "ABC", "*"):
        result = subprocess.run(killer.kill_command(token))
        assert result.returncode == 2
