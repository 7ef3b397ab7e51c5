"""`runtime/jsonlite`: the dispatcher's JSON, without the json package's import cost."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar_gen.runtime import (
    jsonlite,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_jsonlite_round_trips_like_json(value: object) -> None:
    encoded = jsonlite.dumps(value)
    assert json.loads(encoded) == value
    assert jsonlite.loads(encoded) == value
    assert jsonlite.loads(json.dumps(value, indent=1) + "\n") == value


def test_jsonlite_rejects_bad_input() -> None:
    for bad in ("", "{", '{"a": 1} x', "[1,]", "nope"):
        with pytest.raises(ValueError):
            jsonlite.loads(bad)
    with pytest.raises(ValueError):
        jsonlite.dumps(float("nan"))
    with pytest.raises(TypeError):
        jsonlite.dumps({1: "x"})
    with pytest.raises(TypeError):
        jsonlite.dumps(object())


def test_jsonlite_escapes_non_ascii_and_controls() -> None:
    text = jsonlite.dumps({"k": "é\n\"\x00"})
    assert text.isascii()
    assert json.loads(text) == {"k": "é\n\"\x00"}
