"""What compose reads before any service: the environment, `${...}` interpolation, the file set.

These follow compose-go (the loader behind `docker compose`), so that init, validate and render
see the project `docker compose` sees in that folder:

- the environment is the process environment with `PWD` set to the project folder (as a shell
  in that folder has it), plus the project's `.env` for names the environment does not set;
- `.env` values are expanded like compose expands them (unquoted and double-quoted values,
  with the environment first, then earlier lines of the file; single quotes are literal);
- the file set is `COMPOSE_FILE` (split on `COMPOSE_PATH_SEPARATOR`, relative to the project
  folder), else the first of `compose.yaml`, `compose.yml`, `docker-compose.yml`,
  `docker-compose.yaml` plus the first override file next to it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sidecar_gen.errors import InputError
from sidecar_gen.fsutil import read_text_file
from sidecar_gen.yamlio import MAX_BYTES

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")
# The same bound render puts on the compose file it edits: bigger is a mistake or an attack.
MAX_FILE_BYTES = MAX_BYTES
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTENV_KEY = re.compile(r"[\w.\-\[\]]+")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            '"': '"', "\\": "\\", "$": "$$"}

Lookup = Callable[[str], "str | None"]


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, or a `${` compose cannot read."""


# --- interpolation ------------------------------------------------------------------------------

def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start`; nested `${...}` count."""
    depth = 0
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


MAX_NESTING = 16  # `${A:-${B:-...}}` deeper than this is refused (bounded work per value)


def _braced(body: str, lookup: Lookup, whole: str, depth: int) -> str:
    name_match = _NAME.match(body)
    if name_match is None:
        raise InterpolationError(f"invalid interpolation format in {whole!r}")
    name, rest = name_match.group(), body[name_match.end():]
    value = lookup(name)
    if not rest:
        return value or ""
    colon = rest.startswith(":")
    operator, argument = (rest[1:2], rest[2:]) if colon else (rest[:1], rest[1:])
    if operator not in ("-", "+", "?"):
        raise InterpolationError(f"invalid interpolation format in {whole!r}")
    present = bool(value) if colon else value is not None
    if operator == "-":
        return value or "" if present else interpolate(argument, lookup, depth + 1)
    if operator == "+":
        return interpolate(argument, lookup, depth + 1) if present else ""
    if not present:
        reason = interpolate(argument, lookup, depth + 1)
        raise InterpolationError(f"required variable {name} is missing a value"
                                 + (f": {reason}" if reason else ""))
    return value or ""


def interpolate(text: str, lookup: Lookup, depth: int = 0) -> str:
    """Compose's `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
    `${VAR+alt}`, `${VAR:?err}`, `${VAR?err}` (defaults nest) and `$$` for a literal `$`.

    A missing variable is empty; raises InterpolationError where compose refuses the text.
    """
    if depth > MAX_NESTING:
        raise InterpolationError(f"defaults nested more than {MAX_NESTING} deep")
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1:i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                raise InterpolationError(f"invalid interpolation format in {text!r}")
            out.append(_braced(text[i + 2:end], lookup, text, depth))
            i = end + 1
        elif (match := _NAME.match(text, i + 1)) is not None:
            out.append(lookup(match.group()) or "")
            i = match.end()
        else:
            out.append("$")  # compose keeps a lone `$`
            i += 1
    return "".join(out)


# --- .env ---------------------------------------------------------------------------------------

def _unescape_double(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPES:
            out.append(_ESCAPES[value[i + 1]])
            i += 2
            continue
        out.append(value[i])
        i += 1
    return "".join(out)


def _quoted(src: str, start: int) -> tuple[str, int]:
    """(raw value, index after it) of the value quoted by `src[start]`; a backslash escapes the
    quote."""
    quote = src[start]
    chars: list[str] = []
    escaped = False
    for index in range(start + 1, len(src)):
        char = src[index]
        if escaped:
            escaped = False
            if char != quote:
                chars.append("\\")
            chars.append(char)
        elif char == "\\":
            escaped = True
        elif char == quote:
            return "".join(chars), index + 1
        else:
            chars.append(char)
    raise ValueError("unterminated quoted value")


_SPACE = re.compile(r"\s*")
_EXPORT = re.compile(r"export[ \t]+")
_BLANKS = re.compile(r"[ \t]*")


def parse_dotenv(text: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Parse a `.env` file the way compose does; raises ValueError with the line at fault.

    One pass over the text (an index, no slicing), so a big file costs linear time.
    """
    values: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return environ[name] if name in environ else values.get(name)

    src = text.replace("\r\n", "\n")
    i = 0
    while True:
        i = _SPACE.match(src, i).end()  # type: ignore[union-attr]  # \s* always matches
        if i >= len(src):
            return values
        line_end = src.find("\n", i)
        line_end = len(src) if line_end < 0 else line_end
        if src[i] == "#":
            i = line_end
            continue
        start = i
        export = _EXPORT.match(src, i)
        if export:
            i = export.end()
        key_match = _DOTENV_KEY.match(src, i)
        key = key_match.group() if key_match else ""
        j = _BLANKS.match(src, i + len(key)).end()  # type: ignore[union-attr]
        separator = src[j:j + 1]
        if not key or separator not in ("=", ":", "\n", ""):
            raise ValueError(f"line {src.count(chr(10), 0, start) + 1}: cannot read a "
                             f"variable name in {src[i:line_end]!r}")
        if separator in ("\n", ""):
            if key in environ:  # a bare name takes the environment's value, if any
                values[key] = environ[key]
            i = j
            continue
        j = _BLANKS.match(src, j + 1).end()  # type: ignore[union-attr]
        try:
            if src[j:j + 1] in ("'", '"'):
                raw, i = _quoted(src, j)
                value = raw if src[j] == "'" else interpolate(_unescape_double(raw), lookup)
            else:
                i = line_end
                value = interpolate(src[j:line_end].partition(" #")[0].rstrip(), lookup)
        except (ValueError, InterpolationError) as exc:
            raise ValueError(f"line {src.count(chr(10), 0, start) + 1}: {exc}") from None
        values[key] = value


# --- the project's environment and file set -----------------------------------------------------

@dataclass(frozen=True)
class ComposeSetup:
    """Where compose starts from in one folder: its environment and the files it loads."""

    directory: Path  # the folder compose runs in (the project folder)
    environ: dict[str, str]  # the process environment with PWD, plus .env where not set
    process_environ: dict[str, str]  # the process environment with PWD (what compose starts with)
    files: tuple[Path, ...]  # the compose files, in load order (empty: none found)
    dotenv: Path | None = None  # the .env that was read, if any

    @property
    def working_dir(self) -> Path:
        """compose's project working directory: the folder of the first file."""
        return self.files[0].parent if self.files else self.directory


def read_bounded(path: Path) -> str:
    """A compose-side text file (compose file, .env, Dockerfile), refused above the size limit."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size > MAX_FILE_BYTES:
        raise InputError(str(path), f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
    return read_text_file(path)


def project_environ(directory: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment as a shell in `directory` has it (`PWD` is that folder)."""
    env = dict(os.environ if environ is None else environ)
    here = directory.absolute()
    pwd = env.get("PWD")
    # Keep the caller's spelling of PWD (symlinks included) only when it names this folder.
    if not pwd or not os.path.isabs(pwd) or os.path.realpath(pwd) != os.path.realpath(here):
        env["PWD"] = str(here)
    return env


def load_dotenv(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of one `.env` file; InputError when compose would refuse it too."""
    try:
        return parse_dotenv(read_bounded(path), environ)
    except ValueError as exc:
        raise InputError(str(path), str(exc)) from None


def find_default_file(directory: Path) -> Path | None:
    """The compose file `docker compose` picks in `directory` (no COMPOSE_FILE), if any."""
    return next((directory / n for n in DEFAULT_FILES if (directory / n).is_file()), None)


def compose_setup(directory: Path, explicit: tuple[Path, ...] = (),
                  environ: Mapping[str, str] | None = None) -> ComposeSetup:
    """The environment and files `docker compose` uses in `directory` (`-f` files: `explicit`).

    Raises InputError for an unreadable `.env` or a named file that does not exist.
    """
    here = directory.absolute()
    base_env = project_environ(here, environ)
    env = dict(base_env)
    explicit = tuple(f if f.is_absolute() else Path.cwd() / f for f in explicit)
    # With -f, compose reads .env next to the first file; otherwise in the folder it runs in.
    env_dir = explicit[0].parent if explicit else here
    dotenv_path = env_dir / ".env"
    dotenv: Path | None = None
    if dotenv_path.is_file() and env.get("COMPOSE_DISABLE_ENV_FILE", "").lower() not in (
            "1", "true"):
        dotenv = dotenv_path
        for key, value in load_dotenv(dotenv_path, env).items():
            env.setdefault(key, value)
    files: tuple[Path, ...]
    if explicit:
        files = explicit
    elif env.get("COMPOSE_FILE"):
        separator = env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = tuple(here / p for p in env["COMPOSE_FILE"].split(separator) if p)
    else:
        main = find_default_file(here)
        override = next((here / n for n in OVERRIDE_FILES if (here / n).is_file()), None)
        files = tuple(f for f in (main, override) if f is not None)
    for file in files:
        if not file.is_file():
            raise InputError(str(file), "no such compose file")
        # Refused before any reader sees it, so the compose CLI and our reader agree.
        if file.stat().st_size > MAX_FILE_BYTES:
            raise InputError(str(file), f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
    return ComposeSetup(directory=here, environ=env, process_environ=base_env, files=files,
                        dotenv=dotenv)
