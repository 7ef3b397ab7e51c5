"""`runtime/plan`: the exec one routed command becomes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sidecar_gen.runtime import (
    names,
)
from sidecar_gen.runtime.contract import Route
from sidecar_gen.runtime.plan import ExecPlan
from sidecar_gen.runtime.terminal import DETACH_BYTES, DETACH_KEYS

REPO = Path(__file__).resolve().parents[2]


ROUTE = Route("app", ("php",), paths=(("/workspace", "/srv"),), user="${PUID}:${PGID}",
              env=("APP_ENV",), tty="always", stdin="never", timeout=5.0)


def _plan(route: Route = ROUTE, environ: dict[str, str] | None = None) -> ExecPlan:
    return ExecPlan.build("php", ["/workspace/a.php"], route, ref="cid", container="shop-app-1",
                      user="1000:1000" if route.user else None,
                      endpoint=("unix", "/x.sock", 0), environ=environ or {"APP_ENV": "t"},
                      cwd="/workspace/src")


def test_plan_exec_config() -> None:
    plan = _plan()
    config = plan.exec_config()
    token = plan.token
    assert config == {
        "AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": True,
        "Env": ["APP_ENV=t", "HOME=/tmp", f"SIDECAR_EXEC_TOKEN={token}"],
        "Cmd": ["php", "/srv/a.php"], "WorkingDir": "/srv/src", "DetachKeys": DETACH_KEYS,
        "User": "1000:1000"}
    assert len(token) == names.EXEC_TOKEN_HEX_DIGITS and int(token, 16) >= 0
    # No terminal: no detach keys (they only exist on a TTY); no user: no home is made up.
    plain = _plan(Route("app", ("php",), tty="never", stdin="always"))
    config = plain.exec_config()
    assert "DetachKeys" not in config and "User" not in config
    assert config["Env"] == [f"SIDECAR_EXEC_TOKEN={plain.token}"]
    assert (config["Tty"], config["AttachStdin"]) == (False, True)


def test_plan_is_read_only() -> None:
    plan = _plan()
    with pytest.raises(AttributeError):
        plan.user = "0"  # type: ignore[misc]


def test_detach_keys_are_ones_docker_accepts_and_nobody_types() -> None:
    keys = DETACH_KEYS.split(",")
    assert len(keys) >= 6
    assert "ctrl-p" not in keys and "ctrl-q" not in keys
    # Docker's names: ctrl-@ is NUL, ctrl-X is X's code - 0x40 (the daemon's term.ToBytes).
    assert bytes(ord(k[-1]) - 0x40 for k in keys) == DETACH_BYTES


@pytest.mark.parametrize(("source", "mode", "expected"), [
    ("devnull", "auto", False), ("closed", "auto", False), ("pipe", "auto", True),
    ("devnull", "always", True), ("pipe", "never", False), ("file", "auto", True),
])
def test_stdin_wanted(source: str, mode: str, expected: bool, tmp_path: Path) -> None:
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "from sidecar_gen.runtime.plan import stdin_wanted\n"
              f"print(stdin_wanted({mode!r}))\n")
    data = tmp_path / "in.txt"
    data.write_text("x")
    stdin: Any = {"devnull": subprocess.DEVNULL, "pipe": None, "closed": None,
                  "file": data.open("rb")}[source]
    argv = [sys.executable, "-I", "-S", "-c", script]
    if source == "closed":
        argv = ["sh", "-c", '"$@" <&-', "sh", *argv]
    result = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE, text=True, check=True,
                            input="" if source == "pipe" else None)
    assert result.stdout.strip() == str(expected)


def test_home_for_uids_without_an_account() -> None:
    from sidecar_gen.runtime.userspec import home_for

    assert home_for("1000:1000") == "/tmp"
    assert home_for("4242") == "/tmp"
    assert home_for("www-data") is None  # a named user has an account, and its home
    assert home_for("www-data:1000") is None
    assert home_for("0:0") is None  # root's home always exists
    assert home_for(None) is None
    assert home_for("1000:1000", ("HOME",)) is None  # bridge.yaml passes HOME through
