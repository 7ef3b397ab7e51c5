"""`runtime/pathmap`: host paths mapped into the container, and the working directory."""

from __future__ import annotations

import pytest

from sidecar_gen.runtime import (
    pathmap,
)

MAP = (("/workspace/vendor", "/opt/vendor"), ("/workspace", "/var/www/html"))


@pytest.mark.parametrize(("arg", "expected"), [
    ("/workspace", "/var/www/html"),
    ("/workspace/", "/var/www/html/"),
    ("/workspace/src/a.php", "/var/www/html/src/a.php"),
    ("/workspace/vendor/x", "/opt/vendor/x"),
    ("/workspace2/x", "/workspace2/x"),
    ("/workspacex", "/workspacex"),
    ("/other/workspace", "/other/workspace"),
    ("workspace/a", "workspace/a"),
    ("--config=/workspace/c.xml", "--config=/var/www/html/c.xml"),
    ("-c=/workspace/c.xml", "-c=/var/www/html/c.xml"),
    ("--config=/workspace2/c.xml", "--config=/workspace2/c.xml"),
    ("--opt=relative", "--opt=relative"),
    ("x=/workspace", "x=/workspace"),
    ("", ""),
])
def test_map_arg(arg: str, expected: str) -> None:
    assert pathmap.map_arg(arg, MAP) == expected


def test_map_root_mappings() -> None:
    assert pathmap.map_path("/a/b", (("/", "/srv"),)) == "/srv/a/b"
    assert pathmap.map_path("/", (("/", "/srv"),)) == "/srv"
    assert pathmap.map_path("/app/x", (("/app", "/"),)) == "/x"
    assert pathmap.map_path("/app", (("/app", "/"),)) == "/"


def test_pick_workdir_precedence() -> None:
    assert pathmap.pick_workdir("/workspace/src", MAP, "/w") == "/var/www/html/src"
    assert pathmap.pick_workdir("/elsewhere", MAP, "/w") == "/w"
    assert pathmap.pick_workdir("/elsewhere", MAP, None) == "/elsewhere"
    assert pathmap.pick_workdir("/workspace2", MAP, None) == "/workspace2"
