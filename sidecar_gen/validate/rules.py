"""The catalog of validation rules: id, severity and what each means.

Every finding names one of these ids. The catalog is the one source for SARIF's rule metadata
(`reporters.format_sarif`), the README's rule table (a test keeps the two equal:
`markdown_table()` prints it) and for the severity a rule has by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar_gen.validate.findings import Severity

E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE


@dataclass(frozen=True)
class Rule:
    """One validation rule."""

    id: str
    severity: Severity
    summary: str  # one sentence: what the finding means and what to do about it


RULES: tuple[Rule, ...] = (
    # YAML itself
    Rule("yaml-syntax", E, "the YAML does not parse (position from the parser)"),
    Rule("duplicate-key", E, "a key appears twice in one mapping; every duplicate is "
         "reported, with the line of the first definition"),
    Rule("key-not-string", E, "an unquoted key YAML reads as another type (`true:`, `1:`, "
         "`null:`): quote it"),
    Rule("multiple-documents", E, "one YAML document is expected, the file has several"),
    Rule("empty-document", E, "the file or its document is empty"),
    Rule("file-too-large", E, "the file is over 1 MiB"),
    Rule("yaml-too-large", E, "over 100,000 values after alias expansion (\"billion laughs\")"),
    Rule("yaml-too-deep", E, "nested more than 64 levels"),
    # the JSON Schema
    Rule("unknown-key", E, "a key the schema does not know, with a \"did you mean\" hint"),
    Rule("required", E, "a required key is missing"),
    Rule("schema-type", E, "a value of the wrong type"),
    Rule("schema-enum", E, "a value that is not one of the allowed words"),
    Rule("schema-pattern", E, "a value that does not have the expected form"),
    Rule("schema-range", E, "a number out of its range"),
    Rule("schema-empty", E, "an empty string, list or mapping where one is needed"),
    Rule("schema-unique", E, "a list names a value twice"),
    Rule("schema-const", E, "a value that must be exactly one thing"),
    Rule("schema", E, "any other JSON Schema violation"),
    Rule("version", E, "`version` must be the string \"1\""),
    # rules the schema cannot express
    # container references, checked against the compose project (`containers`)
    Rule("unknown-container", E, "a command's `container` (or `default_container`) is neither "
         "in `containers`, nor a compose service, nor a container compose creates (with "
         "\"did you mean\")"),
    Rule("unknown-container-name", E, "a `containers:` value is a name compose never creates "
         "in this project (e.g. another checkout's `<folder>-php-1`): route by service instead"),
    Rule("project-mismatch", E, "`sidecar.project` is not the compose project's name, so no "
         "service would be found"),
    Rule("folder-dependent-name", W, "a container name or `sidecar.project` that comes from "
         "the checkout's folder name: a checkout under another name breaks it"),
    Rule("container-unchecked", W, "no compose project was read, so a reference outside "
         "`containers:` could not be checked (with \"did you mean\")"),
    Rule("compose-unreadable", W, "the compose project next to the file could not be read (the "
         "reason is given); names were not checked"),
    # other rules the schema cannot express
    Rule("command-name", E, "a command name that cannot be a file name (`/`, empty, `.`, "
         "`..`) or typed (leading `-`, spaces)"),
    Rule("reserved-command", E, "`sh`, `bash`, `env`, `sudo`, `su`, `runuser`, `claude`, "
         "`python3`, `sidecar*`: the Claude container itself needs these, so routing them "
         "elsewhere would break Claude's shell or the dispatcher"),
    Rule("path-not-absolute", E, "a `paths` key or value, or a `workdir`, that is not absolute"),
    Rule("path-not-normalized", W, "`/workspace/`, `/a//b`, `/a/../b`: they still work (the "
         "dispatcher normalizes), but write them plainly"),
    Rule("workdir-outside-paths", W, "`workdir` lies outside every `paths` target, so no mapped "
         "directory can ever be it (usually a typo)"),
    Rule("exec-syntax", E, "`exec` has unbalanced quotes"),
    Rule("empty-exec", E, "`exec` names no program after splitting into words"),
    Rule("unused-container", W, "a `containers` entry no command uses"),
    Rule("no-commands", N, "`commands` is empty: nothing is routed, Claude still gets its own "
         "firewalled container and every command runs there (a note: the file is valid)"),
    Rule("limit-too-low", E, "a `sidecar.limits` memory or pids value below what that part "
         "needs to run (Claude Code alone: about 400 MiB), or logs that keep under 1 MiB"),
    Rule("duplicate-repository", W, "`sidecar.broker.github.repositories` names a repository "
         "twice (case and a trailing `.git` ignored): pushing is allowed if either entry says so"),
)

RULE_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}


def rule(rule_id: str) -> Rule:
    """The catalog entry of `rule_id` (KeyError for an id that is not in the catalog)."""
    return RULE_BY_ID[rule_id]


def markdown_table() -> str:
    """The README's rule table, generated from the catalog."""
    lines = ["| rule | severity | meaning |", "|---|---|---|"]
    lines += [f"| `{r.id}` | {r.severity} | {r.summary} |" for r in RULES]
    return "\n".join(lines) + "\n"
