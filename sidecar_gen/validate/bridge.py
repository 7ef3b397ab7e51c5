"""Validation of bridge.yaml: the JSON Schema plus the rules a schema cannot express.

Every problem in every file becomes a `Finding` with a 1-based line and column; nothing here
raises for bad input.
"""

from __future__ import annotations

import difflib
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from sidecar_gen import resources
from sidecar_gen.compose.project import ProjectNames
from sidecar_gen.fsutil import read_text_file
from sidecar_gen.limits import too_low
from sidecar_gen.runtime.contract import split_exec
from sidecar_gen.runtime.pathmap import is_within
from sidecar_gen.validate.containers import container_findings
from sidecar_gen.validate.findings import Finding, Severity, json_path_of
from sidecar_gen.yamlio import Loaded, load_text, position

# Names the Claude container itself relies on: a wrapper with one of these names would route
# Claude's own shell, privilege tools or the dispatcher's interpreter into another container.
RESERVED_COMMANDS = frozenset({"sh", "bash", "env", "sudo", "su", "claude", "python3", "runuser"})
RESERVED_PREFIX = "sidecar"


@dataclass
class Report:
    """The result of validating one or more files."""

    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def errors(self) -> list[Finding]:
        """Findings of severity error."""
        return [f for f in self.findings if f.severity is Severity.ERROR]

    def warnings(self) -> list[Finding]:
        """Findings of severity warning."""
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def failed(self, *, strict: bool = False) -> bool:
        """True when the files are not valid (warnings count with `strict`)."""
        return bool(self.errors()) or (strict and bool(self.warnings()))


@cache
def _validator() -> Draft202012Validator:
    schema = resources.schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_file(path: Path, names: ProjectNames | None = None) -> list[Finding]:
    """Validate one file on disk. Raises InputError when it cannot be read as text."""
    text = read_text_file(path)
    return validate_text(text, str(path), names)


def validate_text(text: str, source: str, names: ProjectNames | None = None) -> list[Finding]:
    """Validate bridge.yaml text; returns every finding, sorted by position."""
    loaded = load_text(text, source)
    findings = list(loaded.findings)
    if loaded.plain is not None:
        findings.extend(schema_findings(loaded))
        findings.extend(semantic_findings(loaded, names))
    return sorted(set(findings))


def load_validated(path: Path, names: ProjectNames | None = None) -> tuple[Loaded, list[Finding]]:
    """Load and validate one file, returning the document too (for callers that build a model)."""
    return load_validated_text(read_text_file(path), str(path), names)


def load_validated_text(text: str, source: str,
                        names: ProjectNames | None = None) -> tuple[Loaded, list[Finding]]:
    """`load_validated` for text already read (`source` names it in findings)."""
    loaded = load_text(text, source)
    findings = list(loaded.findings)
    if loaded.plain is not None:
        findings.extend(schema_findings(loaded))
        findings.extend(semantic_findings(loaded, names))
    return loaded, sorted(set(findings))


# --- schema -----------------------------------------------------------------------------------

def _describe_types(schema: dict[str, Any]) -> str:
    kinds = []
    for sub in schema.get("oneOf", schema.get("anyOf", [])):
        kind = sub.get("type")
        if kind == "array":
            item = sub.get("items", {}).get("type", "value")
            kinds.append(f"a list of {item}s")
        elif kind:
            kinds.append(f"a {kind}" if kind != "object" else "a mapping")
    return " or ".join(kinds) or "a valid value"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _leaf_errors(error: ValidationError) -> Iterator[ValidationError]:
    """For oneOf/anyOf, descend into the branch whose declared type matches the value."""
    branches = error.validator_value
    if error.validator in ("oneOf", "anyOf") and error.context and isinstance(branches, list):
        checker = _validator().TYPE_CHECKER
        for index, branch in enumerate(list(branches)):
            kind = branch.get("type") if isinstance(branch, dict) else None
            if isinstance(kind, str) and checker.is_type(error.instance, kind):
                chosen = [e for e in error.context if e.schema_path and e.schema_path[0] == index]
                if chosen:
                    for sub in chosen:
                        yield from _leaf_errors(sub)
                    return
    yield error


def _message(error: ValidationError, where: tuple[str | int, ...]) -> tuple[str, str]:
    """Return (rule, message) for one schema error, in words a user understands."""
    label = json_path_of(where)
    validator = str(error.validator)
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    if validator == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else str(expected)
        expected_text = expected_text.replace("object", "mapping").replace("array", "list")
        return "schema-type", f"{label} must be a {expected_text}, not {_type_name(value)}"
    if validator == "const":
        if where == ("version",):
            hint = ' (quote it: version: "1")' if value in (1, 1.0) else ""
            return "version", f'version must be the string "1"{hint}'
        return "schema-const", f"{label} must be {error.validator_value!r}"
    if validator == "enum":
        allowed = ", ".join(str(v) for v in schema.get("enum", []))
        return "schema-enum", f"{label} must be one of: {allowed} (got {value!r})"
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return "required", f"{label} is missing the required key '{missing}'"
    if validator == "pattern":
        if schema.get("pattern") == "^/":
            return "path-not-absolute", (f"{label} must be an absolute path (start with /), "
                                         f"got {value!r}")
        title = str(schema.get("title", "")).lower()
        examples = ", ".join(json.dumps(e) for e in schema.get("examples", [])[:3])
        if title and examples:
            return "schema-pattern", f"{label}: {value!r} is not a valid {title} (e.g. {examples})"
        return "schema-pattern", (f"{label} has an invalid value {value!r} "
                                  f"(expected the form {schema.get('pattern')})")
    if validator == "minProperties":
        return "schema-empty", f"{label} must not be empty"
    if validator == "minItems":
        return "schema-empty", f"{label} must not be an empty list"
    if validator == "minLength":
        return "schema-empty", f"{label} must not be empty"
    if validator == "uniqueItems":
        return "schema-unique", f"{label} lists a value more than once"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return "schema-range", (f"{label} must be {words[validator]} "
                                f"{error.validator_value}, got {value!r}")
    if validator in ("oneOf", "anyOf"):
        return "schema-type", f"{label} must be {_describe_types(schema)}, not {_type_name(value)}"
    return "schema", f"{label}: {error.message}"


def _known_keys(schema: dict[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def schema_findings(loaded: Loaded) -> Iterator[Finding]:
    """Yield findings from the JSON Schema, each mapped back to its YAML position."""
    for top in _validator().iter_errors(loaded.plain):
        for error in _leaf_errors(top):
            where = tuple(error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                allowed = _known_keys(error.schema if isinstance(error.schema, dict) else {})
                for key in error.instance:
                    if key in allowed:
                        continue
                    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                    hint = f"; did you mean '{close[0]}'?" if close else (
                        f"; expected one of: {', '.join(allowed)}" if allowed else "")
                    line, col = position(loaded.data, (*where, key), key=True)
                    yield Finding(loaded.path, line, col, "unknown-key",
                                  f"unknown key '{key}' in {json_path_of(where)}{hint}",
                                  json_path=json_path_of((*where, key)))
                continue
            if "propertyNames" in error.schema_path:
                # jsonschema reports a bad key with the parent's path and the key as instance.
                key_where = (*where, str(error.instance))
                rule, message = _message(error, key_where)
                message = message.replace(json_path_of(key_where),
                                          f"key '{error.instance}' in {json_path_of(where)}", 1)
                line, col = position(loaded.data, key_where, key=True)
                yield Finding(loaded.path, line, col, rule, message,
                              json_path=json_path_of(key_where))
                continue
            rule, message = _message(error, where)
            line, col = position(loaded.data, where, key=error.validator == "required")
            yield Finding(loaded.path, line, col, rule, message, json_path=json_path_of(where))


# --- semantic rules ---------------------------------------------------------------------------

def _is_normalized(path: str) -> bool:
    return path == "/" or (posixpath.normpath(path) == path and not path.startswith("//"))


def _command_name_problem(name: str) -> tuple[Severity, str, str] | None:
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        return Severity.ERROR, "command-name", (
            f"command name {name!r} cannot be a file name (no '/', not empty, not '.' or '..')")
    if name.startswith("-") or any(c.isspace() for c in name):
        return Severity.ERROR, "command-name", (
            f"command name {name!r} cannot be typed as a command (leading '-' or whitespace)")
    if name in RESERVED_COMMANDS or name.startswith(RESERVED_PREFIX):
        return Severity.ERROR, "reserved-command", (
            f"command name '{name}' is reserved: the Claude container itself needs it")
    return None


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _repository_findings(src: str, at: Any, doc: dict[Any, Any]) -> Iterator[Finding]:
    """A repository listed twice under sidecar.broker.github (the broker merges them)."""
    github = _mapping(_mapping(_mapping(doc.get("sidecar")).get("broker")).get("github"))
    repositories = github.get("repositories")
    seen: set[str] = set()
    for index, entry in enumerate(repositories if isinstance(repositories, list) else ()):
        name = _mapping(entry).get("name")
        if not isinstance(name, str):
            continue
        key = name.lower().removesuffix(".git")
        if key in seen:
            where = ("sidecar", "broker", "github", "repositories", index, "name")
            line, col = at(where)
            yield Finding(src, line, col, "duplicate-repository",
                          f"repository {name!r} is listed twice (case and .git ignored): "
                          "pushing is allowed if either entry says so", Severity.WARNING,
                          json_path=json_path_of(where))
        seen.add(key)


def semantic_findings(loaded: Loaded, names: ProjectNames | None = None) -> Iterator[Finding]:
    """Yield findings for rules the schema cannot express."""
    doc = loaded.plain
    if not isinstance(doc, dict):
        return
    data = loaded.data
    src = loaded.path
    commands = _mapping(doc.get("commands"))

    def at(parts: tuple[str | int, ...], *, key: bool = False) -> tuple[int, int]:
        return position(data, parts, key=key)

    yield from container_findings(loaded, names)
    if isinstance(doc.get("commands"), dict) and not commands:
        line, col = at(("commands",))
        yield Finding(src, line, col, "no-commands", "no command is routed: Claude gets its own "
                      "firewalled container and every command runs there", Severity.NOTE,
                      json_path="$.commands")
    for parts, message in too_low(_mapping(doc.get("sidecar")).get("limits")):
        where = ("sidecar", "limits", *parts)
        line, col = at(where)
        yield Finding(src, line, col, "limit-too-low", message, json_path=json_path_of(where))
    yield from _repository_findings(src, at, doc)
    for name, spec in commands.items():
        problem = _command_name_problem(str(name))
        if problem:
            severity, rule, message = problem
            line, col = at(("commands", name), key=True)
            yield Finding(src, line, col, rule, message, severity,
                          json_path=json_path_of(("commands", name)))
        if not isinstance(spec, dict):
            continue
        exec_value = spec.get("exec")
        if isinstance(exec_value, str | list) and exec_value:
            yield from _exec_findings(src, at, name, exec_value)
        paths = _mapping(spec.get("paths"))
        for claude_path, container_path in paths.items():
            for value, parts, is_key in (
                (claude_path, ("commands", name, "paths", claude_path), True),
                (container_path, ("commands", name, "paths", claude_path), False),
            ):
                if isinstance(value, str) and value.startswith("/") and not _is_normalized(value):
                    line, col = at(parts, key=is_key)
                    yield Finding(src, line, col, "path-not-normalized",
                                  f"path '{value}' is not normalized; write "
                                  f"'{posixpath.normpath(value)}'", Severity.WARNING,
                                  json_path=json_path_of(parts))
        workdir = spec.get("workdir")
        if isinstance(workdir, str) and workdir.startswith("/"):
            if not _is_normalized(workdir):
                line, col = at(("commands", name, "workdir"))
                yield Finding(src, line, col, "path-not-normalized",
                              f"workdir '{workdir}' is not normalized; write "
                              f"'{posixpath.normpath(workdir)}'", Severity.WARNING,
                              json_path=json_path_of(("commands", name, "workdir")))
            targets = sorted({posixpath.normpath(v) for v in paths.values()
                              if isinstance(v, str) and v.startswith("/")})
            if targets and not any(is_within(posixpath.normpath(workdir), posixpath.normpath(t))
                                   for t in targets):
                line, col = at(("commands", name, "workdir"))
                yield Finding(src, line, col, "workdir-outside-paths",
                              f"workdir '{workdir}' is outside every paths target "
                              f"({', '.join(targets)}): no mapped directory can ever be it",
                              Severity.WARNING,
                              json_path=json_path_of(("commands", name, "workdir")))


def _exec_findings(src: str, at: Any, name: str, exec_value: str | list[Any]) -> Iterator[Finding]:
    parts = ("commands", name, "exec")
    try:
        argv = split_exec(exec_value) if isinstance(exec_value, str) else list(exec_value)
    except ValueError as exc:
        line, col = at(parts)
        yield Finding(src, line, col, "exec-syntax", f"exec cannot be split into words: {exc}",
                      json_path=json_path_of(parts))
        return
    if not argv or not str(argv[0]).strip():
        line, col = at(parts)
        yield Finding(src, line, col, "empty-exec",
                      "exec names no program (it is empty after splitting into words)",
                      json_path=json_path_of(parts))
