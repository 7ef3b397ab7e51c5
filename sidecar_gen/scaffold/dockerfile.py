"""What a build-only service's image has, read from its Dockerfile.

The image is the stage compose builds (`build.target`, else the last), which derives, through
earlier stages, from one external image (`FROM php:8.3-cli AS base`, `ARG`s and build args
substituted); on top of it come the programs its `RUN` lines install (apt/apk/yum packages,
`npm -g`, `pip`, `gem`, well-known installers such as getcomposer.org) and the ones it copies
in from other images (`COPY --from=composer:2 /usr/bin/composer ...`), less what later lines
remove (`apk del .build-deps` of a `--virtual` group, `apt-get purge`). Only that stage's chain
counts: what an earlier build stage installs is not in the image.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sidecar_gen.compose.env import InterpolationError, interpolate
from sidecar_gen.scaffold.programs import CATALOGUE

_HEREDOC = re.compile(r"<<(-?)[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_SEPARATORS = re.compile(r"&&|\|\||[;|\n()]")
_INSTALLERS = {  # package manager command -> the words that start an install
    "apt-get": ("install",), "apt": ("install",), "apk": ("add",), "yum": ("install",),
    "dnf": ("install",), "microdnf": ("install",), "zypper": ("install", "in"),
}
_REMOVERS = {  # package manager command -> the words that start a removal
    "apt-get": ("remove", "purge"), "apt": ("remove", "purge"), "apk": ("del",),
    "yum": ("remove", "erase"), "dnf": ("remove",), "microdnf": ("remove",),
    "zypper": ("remove", "rm"),
}
# Distribution packages -> programs (Debian/Ubuntu, Alpine, Fedora names).
_PACKAGES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern), programs) for pattern, programs in (
        (r"php(\d+(\.\d+)?)?-cli", ("php",)),
        (r"composer", ("composer",)),
        (r"nodejs(-current)?", ("node",)),
        (r"npm", ("npm", "npx")),
        (r"yarn(pkg)?", ("yarn",)),
        (r"python-is-python3", ("python",)),
        (r"golang(-go)?|go", ("go", "gofmt")),
        (r"ruby(-full)?", ("ruby", "gem")),
        (r"ruby-bundler|bundler", ("bundle",)),
        (r"(default-)?mysql-client(-core)?|mariadb-client(-core)?", ("mysql", "mysqldump")),
        (r"postgresql(\d*)-client(-\d+)?|postgresql-client", ("psql", "pg_dump")),
        (r"redis-tools|redis", ("redis-cli",)),
        (r"cargo", ("cargo",)),
        (r"rustc", ("rustc",)),
        (r"openjdk-?\d+(-jdk|-jre)?(-headless)?|default-j(dk|re)(-headless)?", ("java",)),
        (r"maven", ("mvn",)),
        (r"gradle", ("gradle",)),
        (r"elixir", ("elixir", "mix")),
        (r"mongodb-mongosh|mongosh", ("mongosh",)),
    ))
# Language package managers: `npm install -g yarn`, `pip install pytest`, `gem install bundler`.
_TOOL_PACKAGES = {
    "npm": {"yarn": "yarn", "pnpm": "pnpm", "bun": "bun"},
    "pip": {"pytest": "pytest", "poetry": "poetry", "uv": "uv"},
    "gem": {"bundler": "bundle", "rails": "rails", "rake": "rake"},
}
_URLS = (  # installers piped from the network
    ("getcomposer.org/installer", ("composer",)), ("getcomposer.org/download", ("composer",)),
    ("install.python-poetry.org", ("poetry",)), ("astral.sh/uv", ("uv",)),
    ("bun.sh/install", ("bun",)), ("deno.land/install", ("deno",)),
    ("sh.rustup.rs", ("cargo", "rustc")), ("get.pnpm.io", ("pnpm",)),
)


@dataclass
class _Stage:
    base: str
    name: str | None
    runs: list[str] = field(default_factory=list)
    copied: set[str] = field(default_factory=set)
    workdir: str | None = None  # the last WORKDIR (relative ones joined), None: inherited
    user: str | None = None  # the last USER, None: inherited
    entrypoint: list[str] | None = None  # None: inherited
    cmd: list[str] | None = None


@dataclass(frozen=True)
class DockerfileFacts:
    """The external image a stage derives from and what its instructions install."""

    base: str | None  # None when it cannot be told (an unset ARG in FROM)
    installed: frozenset[str]
    stages: tuple[str, ...]  # the chain, e.g. ("php:8.3-cli", "base", "dev")
    workdir: str | None = None  # the image's working directory, when a WORKDIR sets it
    launch: tuple[tuple[str, ...], ...] = ()  # what the image starts with: ENTRYPOINT, CMD
    user: str | None = None  # the image's user, when a USER sets it


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuations joined, heredoc bodies appended."""
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    for line in lines[:5]:
        match = re.match(r"#\s*escape\s*=\s*(\S)", line)
        if match:
            escape = match.group(1)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [line]
        while parts[-1].rstrip().endswith(escape) and i < len(lines):
            parts[-1] = parts[-1].rstrip()[:-1]
            nxt = lines[i]
            i += 1
            if nxt.lstrip().startswith("#"):
                parts.append(escape)  # a comment inside a continuation is dropped
                continue
            parts.append(nxt)
        joined = " ".join(p for p in parts if p != escape)
        for strip, marker in _HEREDOC.findall(joined):
            body = []
            while i < len(lines):
                candidate = lines[i].lstrip("\t") if strip else lines[i]
                i += 1
                if candidate.strip() == marker:
                    break
                body.append(lines[i - 1])
            joined += "\n" + "\n".join(body)
        keyword, _, rest = joined.strip().partition(" ")
        yield keyword.upper(), rest.strip()


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:
        return command.split()


def _package_programs(package: str) -> tuple[str, ...]:
    name = re.split(r"[=<>~@]", package, maxsplit=1)[0].lower()
    for pattern, programs in _PACKAGES:
        if pattern.fullmatch(name):
            return programs
    return ()


def installed_by(run: str) -> set[str]:
    """Programs one RUN instruction leaves installed (from its words and well-known installer
    URLs; what it installs then removes again is not)."""
    added, removed = package_changes(run, {})
    return added - removed


def package_changes(run: str, groups: dict[str, set[str]]) -> tuple[set[str], set[str]]:
    """(programs installed, programs removed) by one RUN instruction, in that order. `groups`
    holds apk's `--virtual` groups across instructions (name -> its programs)."""
    found: set[str] = set()
    gone: set[str] = set()
    # A heredoc body is a shell script: its own line continuations join lines too.
    run = re.sub(r"\\[ \t]*\n", " ", run)
    lowered = run.lower()
    for url, programs in _URLS:
        if url in lowered:
            found.update(programs)
    if "corepack enable" in lowered:
        found.update(("yarn", "pnpm"))
    for command in _SEPARATORS.split(run):
        words = _words(command)
        while words and ("=" in words[0] or words[0] in ("sudo", "env", "exec", "then",
                                                          "do", "else")):
            words = words[1:]  # `DEBIAN_FRONTEND=noninteractive apt-get ...`
        if len(words) < 2:
            continue
        tool = words[0].rsplit("/", 1)[-1]
        rest = [w for w in words[1:] if not w.startswith("-")]
        if tool in _INSTALLERS and rest and rest[0] in _INSTALLERS[tool]:
            group = _virtual_group(words) if tool == "apk" else None
            packages = [p for p in rest[1:] if p != group]
            adds = {p for package in packages for p in _package_programs(package)}
            found |= adds
            gone -= adds
            if group:
                groups[group] = adds
        elif tool in _REMOVERS and rest and rest[0] in _REMOVERS[tool]:
            for package in rest[1:]:
                removes = set(groups.pop(package, ())) | set(_package_programs(package))
                gone |= removes
                found -= removes
        elif tool in ("pip", "pip3", "pipx") or (tool in ("python", "python3", "uv")
                                                  and "pip" in rest[:1]):
            packages = rest[rest.index("install") + 1:] if "install" in rest else []
            found.update(_TOOL_PACKAGES["pip"].get(_package_name(p), "") for p in packages)
        elif tool == "install-php-extensions" and "@composer" in words:
            found.add("composer")  # mlocati's installer: `@composer` is Composer itself
        elif tool == "npm" and ("-g" in words or "--global" in words) and rest[:1] in (
                ["install"], ["i"], ["add"]):
            found.update(_TOOL_PACKAGES["npm"].get(_package_name(p), "") for p in rest[1:])
        elif tool == "gem" and rest[:1] == ["install"]:
            found.update(_TOOL_PACKAGES["gem"].get(_package_name(p), "") for p in rest[1:])
    found.discard("")
    return found, gone


def _virtual_group(words: list[str]) -> str | None:
    """The name of `apk add --virtual NAME` (or `-t NAME`, `--virtual=NAME`)."""
    for index, word in enumerate(words):
        if word.startswith("--virtual="):
            return word.partition("=")[2] or None
        if word in ("--virtual", "-t") and index + 1 < len(words):
            return words[index + 1]
    return None


def _package_name(spec: str) -> str:
    name = re.split(r"[=<>~\[@!;]", spec, maxsplit=1)[0].lower().rsplit("/", 1)[-1]
    # A package file (`npm install -g ./pnpm.tgz`, `pnpm-10.33.4.tgz`): its name before the
    # version.
    return re.sub(r"(-\d[\w.]*)?\.(tgz|tar\.gz|whl)$", "", name)


def _copied(arguments: str) -> set[str]:
    words = _words(arguments)
    sources = [w for w in words if not w.startswith("--")][:-1]
    return {s.rstrip("/").rsplit("/", 1)[-1] for s in sources} & set(CATALOGUE)


def read_dockerfile(text: str, args: Mapping[str, str] | None = None,
                    target: str | None = None) -> DockerfileFacts:
    """The base image and installed programs of stage `target` (else the last stage)."""
    values: dict[str, str] = {}
    build_args = dict(args or {})
    stages: list[_Stage] = []

    def substitute(value: str) -> str | None:
        try:
            result = interpolate(value.replace("$$", "\0"), values.get)
        except InterpolationError:
            return None
        return result.replace("\0", "$")

    for keyword, rest in _instructions(text):
        if keyword == "ARG":
            for declaration in _words(rest):
                name, has_default, default = declaration.partition("=")
                if name in build_args:
                    values[name] = build_args[name]
                elif has_default:
                    values[name] = substitute(default) or ""
        elif keyword == "ENV" and stages:
            pairs = _words(rest)
            if pairs and "=" not in pairs[0] and len(pairs) > 1:
                values[pairs[0]] = " ".join(pairs[1:])  # the legacy `ENV NAME value` form
            else:
                for pair in pairs:
                    name, _, value = pair.partition("=")
                    values[name] = substitute(value) or ""
        elif keyword == "FROM":
            words = [w for w in _words(rest) if not w.startswith("--")]
            if not words:
                continue
            base = substitute(words[0]) or ""
            if base.startswith((":", "@", "/")):
                base = ""  # the repository itself came from an unset ARG
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            parent = next((st for st in stages if st.name and st.name.lower() == base.lower()),
                          None)
            stages.append(_Stage(base=base, name=alias,
                                 workdir=parent.workdir if parent else None))
        elif keyword == "WORKDIR" and stages:
            path = substitute(rest.strip().strip("\"'")) or ""
            if path:
                stages[-1].workdir = posixpath.normpath(posixpath.join(stages[-1].workdir or "/",
                                                                       path))
        elif keyword == "USER" and stages:
            stages[-1].user = substitute(rest.strip()) or rest.strip()
        elif keyword == "RUN" and stages:
            stages[-1].runs.append(substitute(rest) or rest)
        elif keyword in ("CMD", "ENTRYPOINT") and stages:
            argv = _exec_form(rest)
            if keyword == "ENTRYPOINT":
                stages[-1].entrypoint, stages[-1].cmd = argv, []  # ENTRYPOINT resets CMD
            else:
                stages[-1].cmd = argv
        elif keyword in ("COPY", "ADD") and stages and "--from" in rest:
            stages[-1].copied |= _copied(rest)
    return _facts(stages, target)


def _facts(stages: list[_Stage], target: str | None) -> DockerfileFacts:
    if not stages:
        return DockerfileFacts(None, frozenset(), ())
    by_name = {s.name.lower(): s for s in stages if s.name}
    stage = by_name.get(target.lower(), stages[-1]) if target else stages[-1]
    chain: list[_Stage] = []
    while True:
        chain.append(stage)
        parent = by_name.get(stage.base.lower())
        if parent is None or parent in chain:
            break
        stage = parent
    installed: set[str] = set()
    groups: dict[str, set[str]] = {}
    for link in reversed(chain):  # base first: a later line removes what an earlier installed
        for run in link.runs:
            added, removed = package_changes(run, groups)
            installed = (installed - removed) | added
        installed |= link.copied
    runs = "\n".join(run for s in chain for run in s.runs).lower()
    if "node" in installed and "nodesource" in runs:
        installed |= {"npm", "npx"}  # NodeSource's nodejs package carries npm
    workdir = next((s.workdir for s in chain if s.workdir), None)
    entrypoint = next((s.entrypoint for s in chain if s.entrypoint is not None), [])
    cmd = next((s.cmd for s in chain if s.cmd is not None), [])
    return DockerfileFacts(base=chain[-1].base or None, installed=frozenset(installed),
                           stages=tuple(s.name or s.base for s in reversed(chain)),
                           workdir=workdir,
                           launch=tuple(tuple(argv) for argv in (entrypoint, cmd) if argv),
                           user=next((s.user for s in chain if s.user), None))


def _exec_form(arguments: str) -> list[str]:
    """`["php", "app/http.php"]` or the shell form `php app/http.php` (run by `/bin/sh -c`)."""
    text = arguments.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    return ["/bin/sh", "-c", text] if text else []
