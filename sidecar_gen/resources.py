"""The one place that reads packaged data (templates, schemas) with importlib.resources."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

SCHEMA_NAME = "bridge.schema.json"


def data_dir(kind: str) -> Traversable:
    """Return the packaged directory `kind` ("templates" or "schemas")."""
    return files("sidecar_gen").joinpath("_data", kind)


def read_text(kind: str, name: str) -> str:
    """Return the text of one packaged file."""
    return data_dir(kind).joinpath(name).read_text(encoding="utf-8")


def schema_text() -> str:
    """Return bridge.yaml's JSON Schema exactly as shipped."""
    return read_text("schemas", SCHEMA_NAME)


@cache
def schema() -> dict[str, Any]:
    """Return bridge.yaml's JSON Schema, parsed (cached: it never changes at run time)."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


def schema_id() -> str:
    """Return the schema's `$id` (used in the yaml-language-server modeline)."""
    return str(schema()["$id"])


def program_text(module: str) -> str:
    """The source of a module of this package that runs elsewhere as a program text
    (`python3 -I -c TEXT`: inside a container, whatever version of the package it has)."""
    package, _, name = module.rpartition(".")
    return files(package).joinpath(f"{name}.py").read_text(encoding="utf-8")
