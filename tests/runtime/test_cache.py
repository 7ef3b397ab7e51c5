"""`runtime/cache`: where bridge.yaml is found, the cache stored, loaded and found stale."""

from __future__ import annotations

from pathlib import Path

from sidecar_gen.runtime import (
    cache,
)
from sidecar_gen.runtime.contract import Route, RouteTable


def test_find_config_lookup_order(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    assert cache.find_config({}, cwd) == f"{cwd}/.sidecar/bridge.yaml"
    assert cache.find_config({"SIDECAR_CONFIG_DIR": "/cfg"}, cwd) == "/cfg/bridge.yaml"
    assert cache.find_config({"SIDECAR_CONFIG_DIR": "/cfg", "BRIDGE_CONFIG": "/b.yaml"},
                             cwd) == "/b.yaml"
    assert cache.find_config({"BRIDGE_CONFIG": "rel.yaml"}, cwd) == f"{cwd}/rel.yaml"


def test_cache_store_load_and_staleness(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "c")}
    php = Route("php", ("php", "-d", "x=1"), workdir="/app", paths=(("/workspace", "/app"),),
                user="${PUID}:${PGID}", env=("APP_ENV",), tty="never", stdin="never",
                timeout=2.5)
    table = RouteTable("/p/bridge.yaml", (1, 2, 3), {"php": php}, {"db": "x-db-1"},
                       default="php", project="shop")
    written = cache.store(table, env)
    assert written is not None and written.startswith(str(tmp_path / "c" / "claude-sidecar"))
    loaded = cache.load("/p/bridge.yaml", (1, 2, 3), env)
    assert loaded is not None
    assert loaded.to_record() == table.to_record()
    assert loaded.route_for("php") == php
    assert loaded.route_for("other") == Route("php", ("other",))  # through default_container
    assert cache.load("/p/bridge.yaml", (1, 2, 4), env) is None  # edited
    assert cache.load("/q/bridge.yaml", (1, 2, 3), env) is None  # another config
    Path(written).write_bytes(b"\x00garbage")
    assert cache.load("/p/bridge.yaml", (1, 2, 3), env) is None


def test_cache_unwritable_location_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"XDG_CACHE_HOME": str(blocker)}  # a file: no directory can be made under it
    assert cache.store(RouteTable("/p", (1, 2, 3), {}, {}), env) is None
    assert cache.load("/p", (1, 2, 3), env) is None
