"""`runtime/contract`: a route declared once, read back from what init writes."""

from __future__ import annotations

import json
from pathlib import Path

from sidecar_gen.runtime.contract import FIELDS, ROUTE_OPTIONS, Route

REPO = Path(__file__).resolve().parents[2]


def test_schema_command_properties_are_the_route_fields() -> None:
    schema = json.loads((REPO / "schemas" / "bridge.schema.json").read_text())
    properties = set(schema["$defs"]["command"]["properties"])
    assert properties - {"exec"} == set(FIELDS) - {"argv"}
    for name in ("tty", "stdin"):
        spec = schema["$defs"]["command"]["properties"][name]
        assert spec["title"] and spec["description"]
        assert spec["enum"] == ["auto", "always", "never"]


def test_a_route_option_is_declared_once_and_the_schema_agrees() -> None:
    command = json.loads((REPO / "schemas" / "bridge.schema.json").read_text())[
        "$defs"]["command"]
    assert list(command["properties"]) == list(ROUTE_OPTIONS)
    assert set(FIELDS) == {field for field, _parse, _show in ROUTE_OPTIONS.values()}
    defaults = Route.__init__.__kwdefaults__ or {}
    keywords = set(Route.__init__.__code__.co_varnames[1:Route.__init__.__code__.co_argcount])
    assert keywords | set(defaults) == set(FIELDS)
    for key, (field, _parse, _show) in ROUTE_OPTIONS.items():
        if "default" in command["properties"][key]:
            assert command["properties"][key]["default"] == defaults[field], key
        assert (key in command["required"]) == (field not in defaults), key


def test_a_route_reads_back_from_what_init_writes() -> None:
    spec = {"container": "app", "exec": "php -d 'x=a b'", "workdir": "/srv",
            "paths": {"/workspace/": "/srv//app"}, "user": "${PUID}:${PGID}", "env": ["A"],
            "tty": "never", "stdin": "never", "timeout": 5}
    route = Route.from_spec(spec)
    assert route == Route("app", ("php", "-d", "x=a b"), workdir="/srv",
                          paths=(("/workspace", "/srv/app"),), user="${PUID}:${PGID}",
                          env=("A",), tty="never", stdin="never", timeout=5.0)
    assert Route.from_spec(route.to_spec()) == route
    assert Route("app", ("php",)).to_spec() == {"container": "app", "exec": "php"}
