"""The real credentials: their kinds, where the broker reads them, and the placeholders.

The broker reads each secret once, at start, from a file in its secrets folder (never from the
command line or the environment, which `docker inspect` and /proc show), named by its kind:

    api-key        an Anthropic API key       -> `x-api-key: <key>`
    oauth-token    a Claude OAuth token        -> `Authorization: Bearer <token>`
                   (`claude setup-token`)
    github-token   a GitHub token              -> `Authorization: Basic <base64 of
                                                  x-access-token:<token>>` (git over HTTPS)

At most one of api-key and oauth-token. The same names are the files of `sidecar auth`'s store
on the host. The claude container holds only a placeholder of the right kind (fixed, below):
the broker accepts a request whose credential header is empty or a placeholder, and replaces it.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen.errors import InputError
from sidecar_gen.fsutil import open_regular

# Kinds, by the names of their files (not secrets).
API_KEY = "api-key"
OAUTH_TOKEN = "oauth-token"  # noqa: S105
GITHUB_TOKEN = "github-token"  # noqa: S105
KINDS = (API_KEY, OAUTH_TOKEN, GITHUB_TOKEN)
ANTHROPIC_KINDS = (API_KEY, OAUTH_TOKEN)
DESCRIPTION = {API_KEY: "Anthropic API key", OAUTH_TOKEN: "Claude OAuth token",
               GITHUB_TOKEN: "GitHub token"}

# What the claude container gets instead of the real value (ANTHROPIC_API_KEY or
# CLAUDE_CODE_OAUTH_TOKEN). Fixed and public: it opens nothing anywhere but at the broker.
PLACEHOLDER = {API_KEY: "sk-ant-api03-sidecar-broker-placeholder",
               OAUTH_TOKEN: "sk-ant-oat01-sidecar-broker-placeholder"}
GIT_USER = "x-access-token"
MAX_SECRET = 16 * 1024
_VISIBLE = re.compile(r"[\x21-\x7e]+")
# A value that starts like the other Anthropic kind was given to the wrong flag.
_PREFIX = {API_KEY: "sk-ant-api", OAUTH_TOKEN: "sk-ant-oat"}


def secret_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot be a credential of `kind`, in words that never quote it; or None."""
    if not value:
        return "it is empty"
    if len(value) > MAX_SECRET:
        return f"it is longer than {MAX_SECRET} characters"
    if not _VISIBLE.fullmatch(value):
        bad = next(i for i, ch in enumerate(value) if not _VISIBLE.fullmatch(ch))
        return (f"character {bad + 1} is not visible ASCII (a token is one word: no spaces, "
                "no line breaks inside)")
    for other, prefix in _PREFIX.items():
        if other != kind and value.startswith(prefix):
            article = "an" if DESCRIPTION[other][0] in "AEIOU" else "a"
            return f"it looks like {article} {DESCRIPTION[other]} (it starts with {prefix}...)"
    if value in PLACEHOLDER.values():
        return "it is the broker's placeholder, not a real credential"
    return None


def clean_secret(raw: bytes, origin: str, kind: str) -> str:
    """The secret in `raw` (one line; surrounding whitespace dropped); InputError naming
    `origin`, never the value, when it cannot be one."""
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InputError(origin, f"cannot be the {DESCRIPTION[kind]}: it is not ASCII "
                                 "text") from None
    problem = secret_problem(kind, value)
    if problem:
        raise InputError(origin, f"cannot be the {DESCRIPTION[kind]}: {problem}")
    return value


def read_secret_file(path: Path, kind: str) -> str:
    """Read one secret file (a regular file, never a FIFO; at most MAX_SECRET bytes)."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        try:
            raw = handle.read(MAX_SECRET + 2)
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return clean_secret(raw, str(path), kind)


@dataclass(frozen=True)
class Credentials:
    """The secrets the broker holds (never shown: `repr` leaves the values out)."""

    anthropic_kind: str | None = None
    anthropic: str | None = field(default=None, repr=False)
    github: str | None = field(default=None, repr=False)

    def anthropic_header(self) -> tuple[bytes, bytes] | None:
        """The header that carries the Anthropic credential, or None without one."""
        if self.anthropic is None:
            return None
        if self.anthropic_kind == OAUTH_TOKEN:
            return b"Authorization", b"Bearer " + self.anthropic.encode()
        return b"x-api-key", self.anthropic.encode()

    def github_header(self) -> tuple[bytes, bytes] | None:
        """The header that carries the GitHub token to git's smart HTTP, or None."""
        if self.github is None:
            return None
        basic = base64.b64encode(f"{GIT_USER}:{self.github}".encode())
        return b"Authorization", b"Basic " + basic

    def secrets(self) -> list[bytes]:
        """Every byte string a response must never carry back: the values, and the exact
        header values they travel in (a Basic credential is base64, not the token)."""
        out = [v.encode() for v in (self.anthropic, self.github) if v]
        github = self.github_header()
        if github is not None:
            out.append(github[1][len(b"Basic "):])
        return out

    def kinds(self) -> list[str]:
        """The kinds held, for the start-up line (never the values)."""
        return [k for k, v in ((self.anthropic_kind, self.anthropic),
                               (GITHUB_TOKEN, self.github)) if k and v]


def _not_empty(path: Path) -> bool:
    """False only for an empty regular file (a FIFO, too, has size 0: read_secret_file
    refuses it by name)."""
    try:
        info = path.lstat()
    except OSError:
        return True  # read_secret_file says why it cannot be read
    return not (stat.S_ISREG(info.st_mode) and info.st_size == 0)


def load_credentials(folder: Path | None) -> Credentials:
    """The secrets in `folder` (files named by kind; a missing file is a kind not held)."""
    if folder is None:
        return Credentials()
    try:
        names = set(os.listdir(folder))
    except FileNotFoundError:
        raise InputError(str(folder), "the secrets folder does not exist") from None
    except OSError as exc:
        raise InputError(str(folder), f"cannot read the secrets folder: "
                                      f"{exc.strerror or exc}") from None
    # An empty file is a kind not held: `sidecar up` writes every kind, the ones not
    # configured empty (the engine's archive API, how it writes them, cannot delete a file).
    found = {kind: read_secret_file(folder / kind, kind) for kind in KINDS
             if kind in names and _not_empty(folder / kind)}
    anthropic = [kind for kind in ANTHROPIC_KINDS if kind in found]
    if len(anthropic) > 1:
        raise InputError(str(folder), "holds both an api-key and an oauth-token: keep one")
    kind = anthropic[0] if anthropic else None
    return Credentials(kind, found.get(kind) if kind else None, found.get(GITHUB_TOKEN))


def placeholder_problem(name: bytes, value: bytes) -> str | None:
    """Why a credential header the client sent is refused (None: empty or a placeholder)."""
    text = value.decode("latin-1").strip()
    if name.lower() == b"authorization":
        scheme, _, text = text.partition(" ")
        if scheme.lower() != "bearer":
            return ("the Authorization header is not a Bearer placeholder: the broker adds "
                    "the real credential itself")
        text = text.strip()
    if not text or text in PLACEHOLDER.values():
        return None
    return (f"the {name.decode('latin-1')} header holds a value that is not the broker's "
            "placeholder: the real credential lives on the host and the broker adds it")
