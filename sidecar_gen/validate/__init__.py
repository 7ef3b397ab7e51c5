"""`sidecar validate`: bridge.yaml checked against the schema and the rules a schema cannot
express, every problem reported as data.

Owns: findings as plain data (`findings`), the rule catalogue (`rules`), the schema and semantic
checks (`bridge`), the container references checked against the compose project
(`containers`), the output formats (`reporters`, a registry that drives `--format`), and the
action (`check`: options in, findings and an exit code out).

May import: `yamlio`, `resources`, `model`, `compose`, `runtime` and the other base modules.
`findings` and `rules` are data every layer may use (yamlio reports YAML errors as findings).
"""
