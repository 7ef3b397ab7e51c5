"""`GET /containers/json`, answered by the gate itself over the targets only.

The engine is never asked the client's question: the gate takes its own fresh listing of the
candidates (the same query whatever the client asked), keeps the targets, and evaluates the
client's `all`, `limit` and `filters` over them exactly as the engine walks its containers
(moby daemon/list.go, API 1.41: newest first; `before`/`since` first, then the running check,
then name, id and label filters, then the limit, then status). So nothing in the answer, its
status or its timing depends on a container that is not a target: a `before` naming a
container that exists but is not a target is answered exactly like one that does not exist.

Pure: no I/O. Filters the gate cannot evaluate over its listing (`ancestor`, `network`, ...)
are refused with 403; malformed ones get the engine's 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar_gen.gate.policy import NoSuchContainerError, RefusedError, names_of
from sidecar_gen.runtime.contract import labels_of

SUPPORTED_FILTERS = frozenset({"label", "name", "id", "status", "before", "since"})
# Filters the engine knows that need facts the listing lacks (exit codes, images, networks...).
UNSUPPORTED_FILTERS = frozenset({"ancestor", "exited", "health", "isolation", "is-task",
                                 "network", "publish", "expose", "volume"})
STATES = frozenset({"created", "restarting", "running", "removing", "paused", "exited", "dead"})
# The engine's `container.Running` is also true while paused or restarting.
RUNNING_STATES = frozenset({"running", "paused", "restarting"})
QUERY_KEYS = frozenset({"all", "limit", "size", "filters", "trunc_cmd"})
MAX_FILTER_VALUES = 64
# A pattern is matched like the engine's Go regexp, but only in a subset with no repetition,
# so a hostile pattern cannot make the gate backtrack: name characters, `.` (any character),
# `\.` (a dot) and the anchors `^` and `$`.
_PATTERN = re.compile(r"\^?(?:[A-Za-z0-9_/-]|\\?\.)*\$?")


@dataclass(frozen=True)
class ListQuery:
    """A checked container-list query."""

    all: bool = False
    limit: int = -1
    size: bool = False
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _bool(value: str) -> bool:
    # The engine's httputils.BoolValue.
    return value.strip().lower() not in ("", "0", "no", "false", "none")


def _filter_values(key: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        values = tuple(raw)
    elif isinstance(raw, dict) and all(isinstance(k, str) and v is True for k, v in raw.items()):
        values = tuple(raw)  # the docker CLI's form: {"name": {"web": true}}
    else:
        raise RefusedError(f"filter {key!r} must be a list of strings or a map of them to true",
                           status=400)
    if len(values) > MAX_FILTER_VALUES:
        raise RefusedError(f"filter {key!r} has more than {MAX_FILTER_VALUES} values")
    return values


def parse_query(query: Mapping[str, str]) -> ListQuery:
    """Check the query of a container list; raise `RefusedError` (400 or 403) otherwise."""
    unknown = set(query) - QUERY_KEYS
    if unknown:
        raise RefusedError(f"query parameter {sorted(unknown)[0]!r} not allowed")
    limit = -1
    if "limit" in query:
        text = query["limit"]
        if not re.fullmatch(r"-?[0-9]{1,9}", text):
            raise RefusedError("query parameter 'limit' must be an integer", status=400)
        limit = int(text)
    filters: dict[str, tuple[str, ...]] = {}
    if query.get("filters"):
        try:
            raw = json.loads(query["filters"])
        except ValueError as exc:
            raise RefusedError("query parameter 'filters' is not JSON", status=400) from exc
        if not isinstance(raw, dict):
            raise RefusedError("query parameter 'filters' is not a JSON object", status=400)
        for key, value in raw.items():
            if key in UNSUPPORTED_FILTERS:
                raise RefusedError(f"filter {key!r} is not supported by the gate")
            if key not in SUPPORTED_FILTERS:
                raise RefusedError(f"Invalid filter {key!r}", status=400)
            filters[key] = _filter_values(key, value)
    for value in filters.get("status", ()):
        if value not in STATES:
            raise RefusedError(f"Invalid filter 'status={value}'", status=400)
    for key in ("before", "since"):
        if len(filters.get(key, ())) > 1:
            raise RefusedError(f"filter {key!r} takes one container", status=400)
    for key in ("name", "id"):
        for value in filters.get(key, ()):
            if len(value) > 256 or not _PATTERN.fullmatch(value):
                raise RefusedError(
                    f"filter {key}={value!r}: the gate matches only names, ids, '.', '^' and "
                    "'$' (no other regular-expression syntax)")
    return ListQuery(all=_bool(query.get("all", "")) or "status" in filters, limit=limit,
                     size=_bool(query.get("size", "")), filters=filters)


def _match(values: Sequence[str], texts: Sequence[str]) -> bool:
    # The engine's filters.Args.Match: no values matches everything; else any value, taken as
    # a regular expression (the safe subset above), found anywhere in any text.
    if not values:
        return True
    return any(re.search(v, t) for v in values for t in texts)


def _labels_match(values: Sequence[str], labels: Mapping[str, str]) -> bool:
    # filters.Args.MatchKVList: every value must hold; `key` needs the label, `key=value` its
    # value too.
    for value in values:
        key, sep, want = value.partition("=")
        if key not in labels or (sep and labels[key] != want):
            return False
    return True


def _find(entries: Sequence[Mapping[str, Any]], ref: str) -> str:
    # The engine resolves a before/since reference by full id or name only (no prefix).
    for c in entries:
        if c["Id"] == ref or ref.lstrip("/") in names_of(c):
            return str(c["Id"])
    raise NoSuchContainerError(ref)


def _walk_list(entries: Sequence[Mapping[str, Any]],
               filters: Mapping[str, tuple[str, ...]]) -> list[Mapping[str, Any]]:
    names, ids = filters.get("name", ()), filters.get("id", ())
    if not names and not ids:
        return list(entries)
    # With name or id filters the engine first narrows the walk to the containers they match:
    # ids by unique prefix (here: among the targets), names by any of the container's names.
    chosen: set[str] = set()
    for prefix in ids:
        found = [str(c["Id"]) for c in entries if str(c["Id"]).startswith(prefix)]
        if len(found) == 1:
            chosen.add(found[0])
    if names:
        chosen = {str(c["Id"]) for c in entries
                  if (not ids or c["Id"] in chosen)
                  and _match(names, [t for n in names_of(c) for t in ("/" + n, n)])}
    return [c for c in entries if c["Id"] in chosen]


def evaluate(query: ListQuery, targets: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The entries of `targets` (newest first) the engine would answer `query` with, were the
    targets the only containers; `NoSuchContainerError` for a `before`/`since` that names no
    target."""
    f = query.filters
    before = _find(targets, f["before"][0]) if f.get("before") else None
    since = _find(targets, f["since"][0]) if f.get("since") else None
    out: list[Mapping[str, Any]] = []
    for c in _walk_list(targets, f):
        cid = str(c["Id"])
        if before is not None:
            if cid == before:
                before = None
            continue
        if since is not None and cid == since:
            break
        state = str(c.get("State", ""))
        if state not in RUNNING_STATES and not query.all and query.limit <= 0:
            continue
        names = names_of(c)
        primary = [n for n in names if "/" not in n][:1] or names[:1]
        if not _match(f.get("name", ()), [t for n in primary for t in ("/" + n, n)]):
            continue
        if not _match(f.get("id", ()), [cid]):
            continue
        if not _labels_match(f.get("label", ()), labels_of(c)):
            continue
        if query.limit > 0 and len(out) == query.limit:
            break
        if not _match(f.get("status", ()), [state]):
            continue
        out.append(c)
    return out
