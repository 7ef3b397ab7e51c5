"""Which programs a container image has: what init proposes when it cannot ask a running one.

Knowledge is per image repository and, where images changed, per version (MariaDB 11 dropped
`mysql`, MongoDB 6 dropped `mongo`). Stock images are taken as they are published: `php:*` has
no `composer`, `python:*` no `pytest`; a Dockerfile that installs them says so (`dockerfile`).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Sequence

# Every program init may propose, in the order it proposes them. Names the Claude container
# needs itself (sh, python3, ...) are not here: validate refuses them as routes.
CATALOGUE: tuple[str, ...] = (
    "php", "composer",
    "node", "npm", "npx", "yarn", "pnpm", "bun", "deno",
    "python", "pip", "pytest", "uv", "poetry",
    "go", "gofmt",
    "ruby", "gem", "bundle", "rails", "rake",
    "cargo", "rustc",
    "java", "mvn", "gradle",
    "dotnet",
    "elixir", "mix",
    "psql", "pg_dump",
    "mysql", "mysqldump", "mariadb", "mariadb-dump",
    "mongosh", "mongo",
    "redis-cli", "valkey-cli",
)
_ORDER = {name: index for index, name in enumerate(CATALOGUE)}
# Clients of a database server: a service that has only these is the database itself.
DB_CLIENTS = frozenset({"psql", "pg_dump", "mysql", "mysqldump", "mariadb", "mariadb-dump",
                        "mongosh", "mongo", "redis-cli", "valkey-cli"})

# Programs that never read their standard input: init proposes `stdin: never` for them, so a
# routed call inside a `while read` loop cannot eat the loop's input. Few qualify: interpreters,
# package managers and test runners read it (scripts, prompts such as `pip uninstall`'s,
# debuggers), database shells read SQL from it; the dump tools only write.
NO_STDIN = frozenset({"pg_dump", "mysqldump", "mariadb-dump"})


def in_order(programs: set[str] | frozenset[str]) -> tuple[str, ...]:
    """`programs` that init knows, in catalogue order."""
    return tuple(sorted((p for p in programs if p in _ORDER), key=_ORDER.__getitem__))


def _major(tag: str) -> int | None:
    match = re.match(r"v?(\d+)", tag)
    return int(match.group(1)) if match else None


def _mariadb(tag: str) -> tuple[str, ...]:
    major = _major(tag)
    # 11.0 removed the `mysql*` names; `latest`, `lts` and codenames are 11 or newer.
    if major is not None and major < 11:
        return ("mysql", "mysqldump")
    return ("mariadb", "mariadb-dump")


def _mongo(tag: str) -> tuple[str, ...]:
    major = _major(tag)
    if major is not None and major < 5:
        return ("mongo",)
    if major == 5:
        return ("mongosh", "mongo")
    return ("mongosh",)  # 6.0 removed the legacy shell


def _fixed(*programs: str) -> Callable[[str], tuple[str, ...]]:
    return lambda _tag: programs


_PHP = _fixed("php")
_FRANKENPHP = _PHP  # every FrankenPHP image is built on the official php:*-zts images
_PSQL = _fixed("psql", "pg_dump")
_MYSQL = _fixed("mysql", "mysqldump")
_JAVA = _fixed("java")

# Repository (its last path component, or the whole path where the last is ambiguous) ->
# programs, given the tag.
IMAGES: dict[str, Callable[[str], tuple[str, ...]]] = {
    "php": _PHP, "php-fpm": _PHP, "php-cli": _PHP, "php-apache": _PHP,
    # Official application images built on php:*-apache / php:*-fpm.
    "dunglas/frankenphp": _FRANKENPHP,
    "wordpress": _PHP, "nextcloud": _PHP, "drupal": _PHP, "joomla": _PHP,
    "composer": _fixed("composer", "php"),
    "node": _fixed("node", "npm", "npx", "yarn"),  # yarn 1 ships in every official node image
    "oven/bun": _fixed("bun"), "denoland/deno": _fixed("deno"),
    "python": _fixed("python", "pip"),
    "golang": _fixed("go", "gofmt"),
    "ruby": _fixed("ruby", "gem", "bundle"),
    "rust": _fixed("cargo", "rustc"),
    "openjdk": _JAVA, "eclipse-temurin": _JAVA, "amazoncorretto": _JAVA,
    "ibm-semeru-runtimes": _JAVA, "sapmachine": _JAVA,
    "maven": _fixed("mvn", "java"), "gradle": _fixed("gradle", "java"),
    "dotnet/sdk": _fixed("dotnet"), "dotnet/aspnet": _fixed("dotnet"),
    "dotnet/runtime": _fixed("dotnet"),
    "elixir": _fixed("elixir", "mix"),
    "postgres": _PSQL, "postgresql": _PSQL, "postgis/postgis": _PSQL,
    "timescale/timescaledb": _PSQL, "pgvector/pgvector": _PSQL, "ankane/pgvector": _PSQL,
    "supabase/postgres": _PSQL, "pgautoupgrade/pgautoupgrade": _PSQL,
    "mysql": _MYSQL, "mysql-server": _MYSQL, "percona": _MYSQL, "percona-server": _MYSQL,
    "mariadb": _mariadb,
    "mongo": _mongo,
    "redis": _fixed("redis-cli"), "redis-stack-server": _fixed("redis-cli"),
    "valkey/valkey": _fixed("valkey-cli"),
}
# A name that is a toolchain followed by a version (`mimidots/php7.4`, `node18-tools`).
_VERSIONED = re.compile(r"^(php|node|python|golang|ruby)[-_.]?\d[\w.-]*$")


def split_image(image: str) -> tuple[str, str]:
    """`docker.io/library/php:8.3-fpm@sha256:..` -> (`library/php`, `8.3-fpm`), lowercased."""
    name = image.split("@", 1)[0].lower()
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1:] if colon > slash else "latest"
    repo = name[:colon] if colon > slash else name
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host
    return "/".join(parts), tag


def image_programs(image: str | None) -> tuple[str, ...]:
    """The programs init knows `image` has (empty when it does not know the image)."""
    if not image or "$" in image:
        return ()
    repo, tag = split_image(image)
    last = repo.rsplit("/", 1)[-1]
    for key in (repo, "/".join(repo.split("/")[-2:]), last):
        if key in IMAGES:
            return IMAGES[key](tag)
    # A toolchain and its version in the name or in one part of the tag (`mimidots/php7.4`,
    # `dunglas/frankenphp:1-php8.5`, `nikolaik/python-nodejs:python3.12-nodejs22`).
    for part in (last, *tag.split("-")):
        versioned = _VERSIONED.match(part)
        if versioned:
            return IMAGES[versioned.group(1)](tag)
    return ()


# What a program implies: the package manager ships with (or cannot run without) its toolchain.
_IMPLIES = {"npm": ("node", "npx"), "npx": ("node",), "yarn": ("node",), "pnpm": ("node",),
            "composer": ("php",), "pip": ("python",), "bundle": ("ruby",), "rails": ("ruby",),
            "rake": ("ruby",), "mvn": ("java",), "gradle": ("java",), "mix": ("elixir",)}
_PATH_DIRS = frozenset({"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
                        "/bin"})
_SEPARATORS = re.compile(r"&&|\|\||[;|\n]")
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh"})
_WRAPPERS = frozenset({"exec", "env", "tini", "dumb-init", "gosu", "su-exec", "nice", "time"})


def launched(argv: Sequence[str], depth: int = 0) -> tuple[str, ...]:
    """The known programs a container's start command runs (`php app/http.php`,
    `sh -c "rm -f x.pid; bundle exec rails s"`: every command of the script), with what they
    imply."""
    words = list(argv)
    while words and ("=" in words[0] or words[0] in ("--", "-s", "then", "do", "else", "!")
                     or posixpath.basename(words[0]) in _WRAPPERS):
        words = words[1:]  # `env X=1 ...`, `exec ...`, `tini -- ...`
    if not words:
        return ()
    if len(words) >= 3 and posixpath.basename(words[0]) in _SHELLS and words[1] == "-c":
        if depth > 3:
            return ()
        found: set[str] = set()
        for command in _commands(words[2]):
            found.update(launched(command, depth + 1))
        return in_order(found)
    first = posixpath.basename(words[0])
    # `/opt/netbox/venv/bin/python`: that one need not be the `python` a routed call finds.
    on_path = "/" not in words[0] or posixpath.dirname(words[0]) in _PATH_DIRS
    found = {first} if first in _ORDER and on_path else set()
    if first in ("bundle", "npx", "pnpm", "yarn", "npm") and len(words) > 2 \
            and words[1] in ("exec", "run", "dlx") and words[2] in _ORDER:
        found.add(words[2])  # `bundle exec rails s`: both are there
    for program in list(found):
        found.update(_IMPLIES.get(program, ()))
    return in_order(found)


def _commands(script: str) -> list[list[str]]:
    """The simple commands of a `sh -c` script (`a && b; c | d`), as words."""
    out: list[list[str]] = []
    for part in _SEPARATORS.split(script):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        if words:
            out.append(words)
    return out
