"""The one YAML loader: ruamel round-trip, bounded against hostile input, with positions.

Loading happens in two passes over the node graph so that *every* duplicate key is reported
(ruamel stops at the first) and alias bombs are measured before anything is expanded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sidecar_gen.validate.findings import Finding, Severity, json_path_of

MAX_BYTES = 1024 * 1024  # bridge.yaml is a few KiB; anything this big is a mistake or an attack
MAX_NODES = 100_000  # after alias expansion
MAX_DEPTH = 64
# YAML reads these unquoted keys as other types (`true:` is a boolean): names must be strings.
_NON_STRING_KEYS = {"bool": "boolean", "int": "number", "float": "number", "null": "null"}


def make_yaml() -> YAML:
    """Return a round-trip YAML instance set up the way this project reads and writes YAML."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True  # duplicates are found on the node graph and reported
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


@dataclass
class Loaded:
    """A parsed document: round-trip data (with `.lc` positions) and plain data for the schema."""

    path: str
    data: Any = None
    plain: Any = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the document could be parsed into data worth validating."""
        errors = any(f.severity is Severity.ERROR for f in self.findings)
        return not errors or self.plain is not None


def _mark_pos(mark: Any) -> tuple[int, int]:
    if mark is None:
        return 1, 1
    return int(mark.line) + 1, int(mark.column) + 1


def _key_text(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return str(node.value)
    return f"<{type(node).__name__}>"


def _walk_nodes(
    node: Node, path: tuple[str | int, ...], source: str
) -> Iterator[Finding]:
    """Yield duplicate-key findings; visits each node once even when aliased."""
    seen: set[int] = set()
    stack: list[tuple[Node, tuple[str | int, ...], int]] = [(node, path, 0)]
    while stack:
        current, where, depth = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if depth > MAX_DEPTH:
            line, col = _mark_pos(current.start_mark)
            yield Finding(source, line, col, "yaml-too-deep",
                          f"nesting deeper than {MAX_DEPTH} levels", json_path=json_path_of(where))
            return
        if isinstance(current, MappingNode):
            first: dict[str, Node] = {}
            for key_node, value_node in current.value:
                key = _key_text(key_node)
                kind = str(getattr(key_node, "tag", "")).rpartition(":")[2]
                if isinstance(key_node, ScalarNode) and kind in _NON_STRING_KEYS:
                    line, col = _mark_pos(key_node.start_mark)
                    yield Finding(source, line, col, "key-not-string",
                                  f"key {key} is read as a {_NON_STRING_KEYS[kind]}; quote it: "
                                  f"'{key}':", json_path=json_path_of((*where, key)))
                if key in first:
                    line, col = _mark_pos(key_node.start_mark)
                    prev_line, _ = _mark_pos(first[key].start_mark)
                    yield Finding(source, line, col, "duplicate-key",
                                  f"duplicate key '{key}' (first defined on line {prev_line})",
                                  json_path=json_path_of((*where, key)))
                else:
                    first[key] = key_node
                stack.append((value_node, (*where, key), depth + 1))
        elif isinstance(current, SequenceNode):
            for index, item in enumerate(current.value):
                stack.append((item, (*where, index), depth + 1))


def _expanded_size(root: Node) -> int:
    """Count nodes as if every alias were expanded, memoized so bombs cost nothing to measure."""
    memo: dict[int, int] = {}
    order: list[Node] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        children: list[Node] = []
        if isinstance(node, MappingNode):
            for k, v in node.value:
                children += [k, v]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        if done:
            memo[id(node)] = min(MAX_NODES + 1, 1 + sum(memo.get(id(c), 1) for c in children))
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def to_plain(data: Any) -> Any:
    """Convert round-trip data to plain JSON-like types for jsonschema (booleans stay booleans)."""
    if isinstance(data, dict):
        return {str(k): to_plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [to_plain(v) for v in data]
    if isinstance(data, bool):
        return bool(data)
    # ruamel's ScalarBoolean subclasses int, not bool: map it back so "type: boolean" works.
    if type(data).__name__ == "ScalarBoolean":
        return bool(data)
    if isinstance(data, str):
        return str(data)
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    return data


def _compose(yaml: YAML, text: str, result: Loaded) -> Node | None:
    """The one document's node graph, checked (size, syntax, one document, bombs, depth,
    duplicate keys: all findings); None when there is nothing worth constructing."""
    source = result.path
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        result.findings.append(Finding(source, 1, 1, "file-too-large",
                                       f"file is larger than {MAX_BYTES // 1024} KiB"))
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reused anchors etc.: legal YAML, not our concern
            nodes = list(yaml.compose_all(io.StringIO(text)))
    except MarkedYAMLError as exc:
        line, col = _mark_pos(exc.problem_mark or exc.context_mark)
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        if "'\\t'" in problem:  # the parser's words for a tab say nothing useful
            problem = "a tab character: indent with spaces (YAML does not allow tabs here)"
        result.findings.append(Finding(source, line, col, "yaml-syntax", problem))
        return None
    except YAMLError as exc:
        line, col = _mark_pos(getattr(exc, "problem_mark", None) or getattr(exc, "mark", None))
        message = " ".join(str(exc).split()[:30])
        result.findings.append(Finding(source, line, col, "yaml-syntax", message))
        return None
    except RecursionError:
        result.findings.append(Finding(source, 1, 1, "yaml-too-deep", "nesting is too deep"))
        return None
    if len(nodes) > 1:
        line, col = _mark_pos(nodes[1].start_mark)
        result.findings.append(Finding(source, line, col, "multiple-documents",
                                       "only one YAML document is allowed; remove the extra '---'"))
        return None
    if not nodes or nodes[0] is None:
        result.findings.append(Finding(source, 1, 1, "empty-document", "the file is empty"))
        return None
    root: Node = nodes[0]
    if _expanded_size(root) > MAX_NODES:
        line, col = _mark_pos(root.start_mark)
        result.findings.append(Finding(source, line, col, "yaml-too-large",
                                       f"more than {MAX_NODES} values once aliases are expanded"))
        return None
    structural = list(_walk_nodes(root, (), source))
    result.findings.extend(structural)
    if any(f.rule == "yaml-too-deep" for f in structural):
        return None
    return root


BOUND_RULES = ("file-too-large", "yaml-too-large", "yaml-too-deep")


def bounds_problem(text: str, source: str) -> Finding | None:
    """The first bound `text` breaks (size, values once aliases are expanded, depth), else
    None. Only the bounds: a syntax error is for the file's own reader to report. Cheap even
    on an alias bomb (nothing is expanded), so it can guard a reader that has no bounds."""
    result = Loaded(path=source)
    _compose(YAML(typ="safe", pure=True), text, result)
    return next((f for f in result.findings if f.rule in BOUND_RULES), None)


def load_text(text: str, source: str) -> Loaded:
    """Parse YAML text into a `Loaded`; syntax problems become findings, never exceptions."""
    result = Loaded(path=source)
    yaml = make_yaml()
    if _compose(yaml, text, result) is None:
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result.data = yaml.load(io.StringIO(text))
    except (YAMLError, RecursionError, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split()[:30])
        result.findings.append(Finding(source, 1, 1, "yaml-syntax", message))
        return result
    if result.data is None:
        result.findings.append(Finding(source, 1, 1, "empty-document", "the document is empty"))
        return result
    result.plain = to_plain(result.data)
    return result


@dataclass(frozen=True)
class Tagged:
    """A value under a tag YAML does not define (compose's `!reset`, `!override`)."""

    tag: str
    value: Any


class _PlainConstructor(SafeConstructor):
    """Safe construction, with any `!tag` kept as a `Tagged` instead of refused."""


def _tagged(constructor: Any, suffix: str, node: Node) -> Tagged:
    if isinstance(node, MappingNode):
        value: Any = constructor.construct_mapping(node, deep=True)
    elif isinstance(node, SequenceNode):
        value = constructor.construct_sequence(node, deep=True)
    else:
        value = constructor.construct_scalar(node)
    return Tagged("!" + suffix, value)


_PlainConstructor.add_multi_constructor("!", _tagged)


def load_plain(text: str, source: str) -> Loaded:
    """Parse YAML into plain data only (no comments, no positions): several times faster than
    `load_text`, for files only read (compose files), with the same bounds and findings. Tags
    YAML does not define come back as `Tagged`."""
    result = Loaded(path=source)
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _PlainConstructor
    yaml.allow_duplicate_keys = True  # reported as findings by _compose
    root = _compose(yaml, text, result)
    if root is None:
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            constructor = yaml.constructor
            result.plain = constructor.construct_document(root)
    except (YAMLError, RecursionError, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split()[:30])
        result.findings.append(Finding(source, 1, 1, "yaml-syntax", message))
        result.plain = None
        return result
    if result.plain is None:
        result.findings.append(Finding(source, 1, 1, "empty-document", "the document is empty"))
    result.data = result.plain
    return result


def position(data: Any, parts: tuple[str | int, ...], *, key: bool = False) -> tuple[int, int]:
    """Return the 1-based (line, column) of the value at `parts` (or of its key when `key`).

    Falls back to the deepest ancestor that has a position, so every finding gets one.
    """
    line, col = 1, 1
    node = data
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        line, col = lc.line + 1, lc.col + 1
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        try:
            if isinstance(node, CommentedMap) and part in node:
                kline, kcol = node.lc.key(part)
                vline, vcol = node.lc.value(part)
                line, col = (kline + 1, kcol + 1) if key and last else (vline + 1, vcol + 1)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                iline, icol = node.lc.item(part)
                line, col = iline + 1, icol + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line, col
