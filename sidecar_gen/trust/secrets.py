"""Which values the approval keeps in clear, which as keyed digests, and what `--show-values`
reveals.

A value is a secret when the name of its variable says so: the name holds KEY, TOKEN, SECRET,
PASS (PASSWORD too), CREDENTIAL or AUTH, in any case (`ANTHROPIC_API_KEY`, `DB_PASSWORD`,
`GH_TOKEN`, `BASIC_AUTH`). A secret is stored and shown as its keyed digest
(`record.ApprovalStore`): changing it counts as a change, yet it is never written down. Every
other value is stored and shown in clear, so a change of `PUID` from 1000 to 0 reads as exactly
that in the diff
(`COMPOSE_*` always: they choose which files compose reads). The rule applies to `.env` and
`env_file:` copies, and to `environment:` and build-argument values of the compose model.

`Masker` applies it and remembers, in memory only, the clear value behind each digest it
made: `hidden` (the secrets, which `sidecar trust --show-values` reveals on request) and
`known` (the other values, which approvals recorded before this rule stored as digests: a
digest of the same value as now is read as that value, so an upgrade alone changes nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sidecar_gen.trust.record import ApprovalStore

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL", "AUTH")  # PASS: PASSWORD too
CLEAR_PREFIX = "COMPOSE_"  # they choose which files compose loads: never secrets
SHORT = 24  # characters of a digest kept in the copies of env files


def is_secret(name: str | None) -> bool:
    """True when a variable of this name holds a secret (None: no name, so assume it does)."""
    if name is None:
        return True
    upper = name.upper()
    if upper.startswith(CLEAR_PREFIX):
        return False
    return any(word in upper for word in SECRET_WORDS)


@dataclass
class Masker:
    """Stored forms of values, by the name rule, remembering what each digest stands for."""

    store: ApprovalStore
    hidden: dict[str, str] = field(default_factory=dict)  # digest -> secret (never stored)
    known: dict[str, str] = field(default_factory=dict)  # digest -> clear value

    def value(self, name: str | None, value: str, *, short: bool = False) -> str:
        """`value` as stored: itself, or for a secret its keyed digest (`short`: its first
        SHORT characters and an ellipsis, as in the copies of env files)."""
        digest = self.store.digest(value.encode())
        if short:
            digest = digest[:SHORT] + "…"
        if is_secret(name):
            self.hidden[digest] = value
            return digest
        self.known[digest] = value
        return value

    def mapping(self, values: object) -> object:
        """An `environment:` or `args:` section as stored (compose prints a mapping; a list
        form is masked per `NAME=value` entry)."""
        if isinstance(values, dict):
            return {key: None if value is None else self.value(str(key), str(value))
                    for key, value in values.items()}
        if isinstance(values, list):
            return [self.value(str(item).partition("=")[0] if "=" in str(item) else None,
                               str(item)) for item in values]
        return values

    def env_text(self, text: str) -> str:
        """A `KEY=VALUE` file as stored: each secret's value replaced by its digest.

        Only blank and comment lines stay as they are whatever they hold: a line that is not
        `KEY=VALUE` (something compose would reject) is replaced whole, and so is each line
        of a multi-line quoted value of a secret.
        """
        out = []
        open_quote, open_name = "", ""
        for raw in text.splitlines():
            line = raw.strip()
            if open_quote:
                out.append(self.value(open_name, raw, short=True))
                if _closes(line, open_quote):
                    open_quote = ""
                continue
            if not line or line.startswith("#"):
                out.append(raw)
                continue
            assignment = _ASSIGNMENT.match(line)
            if assignment is None:
                out.append(self.value(None, raw, short=True))
                continue
            key, value = assignment.group(1), assignment.group(2)
            open_quote, open_name = _opens_quote(value), key
            out.append(f"{key}={self.value(key, value, short=True)}")
        return "\n".join(out) + ("\n" if text.endswith("\n") else "")


# One `.env` assignment as written (compose reads `KEY=value`, `KEY: value`, `export KEY=...`):
# only the key is needed here, the value is kept as written (compose.env interprets values).
_ASSIGNMENT = re.compile(r"(?:export[ \t]+)?([\w.\-\[\]]+)[ \t]*[=:][ \t]*(.*)")
# An old copy's line whose value was a digest: `KEY=hmac-sha256:0123456789ab…`.
_OLD_LINE = re.compile(r"([\w.\-\[\]]+)=(hmac-sha256:[0-9a-f]{12}…)")


def _opens_quote(value: str) -> str:
    """The quote a value opens and leaves open (a multi-line value), else ""."""
    if not value or value[0] not in "'\"":
        return ""
    return value[0] if not _closes(value[1:], value[0]) else ""


def _closes(text: str, quote: str) -> bool:
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote == '"':
            escaped = True
        elif char == quote:
            return True
    return False


def upgrade_text(text: str, known: dict[str, str]) -> str:
    """An env file's copy from an older approval with the digests of values that are not
    secrets (and are the same now) read back as those values, so an unchanged line does not
    show as changed."""
    def clear(match: re.Match[str]) -> str:
        name, token = match.group(1), match.group(2)
        if is_secret(name) or token not in known:
            return match.group(0)
        return f"{name}={known[token]}"

    return "\n".join(_OLD_LINE.sub(clear, line, count=1) if _OLD_LINE.fullmatch(line) else line
                     for line in text.split("\n"))


def upgrade_values(values: object, known: dict[str, str]) -> object:
    """An `environment:`/`args:` section from an older approval with the digest of each value
    that is not a secret, and is the same now, read back as that value."""
    if not isinstance(values, dict):
        return values
    return {key: known.get(value, value) if isinstance(value, str) and
            not is_secret(str(key)) else value for key, value in values.items()}
