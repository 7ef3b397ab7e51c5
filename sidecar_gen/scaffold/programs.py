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
    "php", "composer", "drush", "wp",
    "node", "npm", "npx", "yarn", "pnpm", "bun", "bunx", "deno",
    "python", "pip", "pytest", "uv", "poetry",
    "go", "gofmt",
    "ruby", "gem", "bundle", "rails", "rake",
    "cargo", "rustc", "rustup",
    "java", "mvn", "gradle",
    "dotnet",
    "elixir", "mix", "iex",
    "psql", "pg_dump",
    "mysql", "mysqldump", "mariadb", "mariadb-dump",
    "mongosh", "mongo",
    "redis-cli", "valkey-cli",
    "clickhouse-client",
)
_ORDER = {name: index for index, name in enumerate(CATALOGUE)}
# Clients of a database server: a service that has only these is the database itself.
DB_CLIENTS = frozenset({"psql", "pg_dump", "mysql", "mysqldump", "mariadb", "mariadb-dump",
                        "mongosh", "mongo", "redis-cli", "valkey-cli", "clickhouse-client"})
# Toolchains: the programs of one language. A program of another toolchain than the image's own
# is a build tool there unless the service works on the project (`proposal`); a service that
# starts one of a toolchain's programs runs that toolchain (who gets a shared program).
TOOLCHAINS: dict[str, frozenset[str]] = {
    "php": frozenset({"php", "composer", "drush", "wp"}),
    "node": frozenset({"node", "npm", "npx", "yarn", "pnpm"}),
    "bun": frozenset({"bun", "bunx"}), "deno": frozenset({"deno"}),
    "python": frozenset({"python", "pip", "pytest", "uv", "poetry"}),
    "go": frozenset({"go", "gofmt"}),
    "ruby": frozenset({"ruby", "gem", "bundle", "rails", "rake"}),
    "rust": frozenset({"cargo", "rustc", "rustup"}),
    "java": frozenset({"java", "mvn", "gradle"}),
    "dotnet": frozenset({"dotnet"}),
    "elixir": frozenset({"elixir", "mix", "iex"}),
}
TOOLCHAIN_OF = {program: name for name, programs in TOOLCHAINS.items() for program in programs}

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
_PHP_COMPOSER = _fixed("php", "composer")
_FRANKENPHP = _PHP  # every FrankenPHP image is built on the official php:*-zts images
_NODE = _fixed("node", "npm", "npx")
_PYTHON = _fixed("python", "pip")
_RUBY = _fixed("ruby", "gem", "bundle", "rake")  # bundler and rake are default gems
_ELIXIR = _fixed("elixir", "mix", "iex")
_PSQL = _fixed("psql", "pg_dump")
_MYSQL = _fixed("mysql", "mysqldump")
_JAVA = _fixed("java")

# Repository (its last path component, or the whole path where the last is ambiguous) ->
# programs, given the tag.
IMAGES: dict[str, Callable[[str], tuple[str, ...]]] = {
    "php": _PHP, "php-fpm": _PHP, "php-cli": _PHP, "php-apache": _PHP,
    # Official application images built on php:*-apache / php:*-fpm.
    "dunglas/frankenphp": _FRANKENPHP,
    "wordpress": lambda tag: ("php", "wp") if tag.startswith("cli") else ("php",),
    "nextcloud": _PHP, "joomla": _PHP,
    "drupal": _PHP_COMPOSER,  # the official image copies composer in
    "composer": _fixed("composer", "php"),
    # Vendors whose PHP images ship Composer (and the CMS's own tool).
    "wodby/php": _PHP_COMPOSER, "wodby/laravel-php": _PHP_COMPOSER,
    "wodby/drupal-php": _fixed("php", "composer", "drush"),
    "wodby/wordpress-php": _fixed("php", "composer", "wp"),
    "wodby/drupal": _fixed("php", "composer", "drush"),
    "wodby/drupal-cms": _fixed("php", "composer", "drush"),
    "wodby/wordpress": _fixed("php", "composer", "wp"),
    "bitnami/php-fpm": _PHP_COMPOSER, "serversideup/php": _PHP_COMPOSER,
    "thecodingmachine/php": _PHP_COMPOSER, "webdevops/php": _PHP_COMPOSER,
    "webdevops/php-nginx": _PHP_COMPOSER, "webdevops/php-apache": _PHP_COMPOSER,
    "node": _fixed("node", "npm", "npx", "yarn"),  # yarn 1 ships in every official node image
    "oven/bun": _fixed("bun", "bunx"), "denoland/deno": _fixed("deno"),
    "python": _PYTHON,
    "golang": _fixed("go", "gofmt"),
    "ruby": _RUBY,
    "rust": _fixed("cargo", "rustc", "rustup"),
    "openjdk": _JAVA, "eclipse-temurin": _JAVA, "amazoncorretto": _JAVA,
    "ibm-semeru-runtimes": _JAVA, "sapmachine": _JAVA,
    "maven": _fixed("mvn", "java"), "gradle": _fixed("gradle", "java"),
    "dotnet/sdk": _fixed("dotnet"),
    "elixir": _ELIXIR,
    "postgres": _PSQL, "postgresql": _PSQL, "postgis/postgis": _PSQL,
    "timescale/timescaledb": _PSQL, "pgvector/pgvector": _PSQL, "ankane/pgvector": _PSQL,
    "supabase/postgres": _PSQL, "pgautoupgrade/pgautoupgrade": _PSQL,
    "mysql": _MYSQL, "mysql-server": _MYSQL, "percona": _MYSQL, "percona-server": _MYSQL,
    "mariadb": _mariadb,
    "mongo": _mongo,
    "redis": _fixed("redis-cli"), "redis-stack-server": _fixed("redis-cli"),
    "valkey/valkey": _fixed("valkey-cli"),
    "clickhouse/clickhouse-server": _fixed("clickhouse-client"),
    "yandex/clickhouse-server": _fixed("clickhouse-client"),
}
# Images of a toolchain that hold only what runs a built program: no route for its build tools.
RUNTIME_ONLY = {
    "dotnet/aspnet": "an ASP.NET Core runtime image (no SDK)",
    "dotnet/runtime": "a .NET runtime image (no SDK)",
    "dotnet/runtime-deps": "a .NET runtime-deps image (no SDK)",
}
# Words of an image's name or tag that say which toolchain or database it carries, for images
# init does not know by name (`wodby/drupal-php`, `zulip/zulip-postgresql`, `mhart/alpine-node`,
# `example/app:1-php8.3`, `changelog-runtime:elixir-v1.18-nodejs-v22`): the programs every image
# of that kind has (a vendor's node image need not have the official one's yarn).
_WORDS: dict[str, Callable[[str], tuple[str, ...]]] = {
    "php": _PHP, "node": _NODE, "nodejs": _NODE, "python": _PYTHON, "ruby": _RUBY,
    "golang": _fixed("go", "gofmt"), "elixir": _ELIXIR, "rust": _fixed("cargo", "rustc"),
    "openjdk": _JAVA, "jdk": _JAVA, "maven": _fixed("mvn", "java"),
    "gradle": _fixed("gradle", "java"), "deno": _fixed("deno"), "bun": _fixed("bun", "bunx"),
    "postgres": _PSQL, "postgresql": _PSQL, "postgis": _PSQL, "pgvector": _PSQL,
    "timescaledb": _PSQL, "mysql": _MYSQL, "mariadb": _mariadb, "mongo": _mongo,
    "mongodb": _mongo, "redis": _fixed("redis-cli"), "valkey": _fixed("valkey-cli"),
    "clickhouse": _fixed("clickhouse-client"),
}
# After a leading toolchain word, the words that make a variant of that toolchain's image
# (`php-fpm-alpine`, `postgres-16-postgis`); any other word names a product built on it
# (`node-red`, `postgres-exporter`, `mongo-express`), which is not the toolchain itself.
_VARIANT_WORDS = frozenset({
    "fpm", "apache", "cli", "zts", "nginx", "alpine", "slim", "debian", "ubuntu", "bookworm",
    "bullseye", "buster", "trixie", "jammy", "noble", "focal", "dev", "devel", "full", "base",
    "server", "client", "tools", "ci", "build", "builder", "sdk", "jdk", "jre", "runtime",
    "postgis", "pgvector", "vector", "vectors", "timescale", "timescaledb", "contrib",
    "extensions", "stack", "ha", "official", "latest", "lts", "stable", "minimal",
})
_WORD = re.compile(r"^([a-z]+?)v?\d[\w.]*$")  # `php8.3`, `nodejs22`, `node18`


def _toolchain_word(word: str) -> str | None:
    if word in _WORDS:
        return word
    versioned = _WORD.match(word)
    return versioned.group(1) if versioned and versioned.group(1) in _WORDS else None


def _word_programs(words: Sequence[str], tag: str, *, named: bool) -> set[str]:
    """Programs the toolchain words among `words` say an image has. In a name (`named`), a
    leading toolchain word counts only when the rest describes a variant of it."""
    found: set[str] = set()
    for index, word in enumerate(words):
        key = _toolchain_word(word)
        if key is None:
            continue
        rest = [w for w in words[index + 1:] if not re.fullmatch(r"v?[\d.]+", w)]
        if named and rest and not all(w in _VARIANT_WORDS or _toolchain_word(w) for w in rest):
            continue
        found.update(_WORDS[key](tag))
    return found
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
    """The programs init knows `image` has (empty when it does not know the image, or knows
    it holds no program init proposes: `runtime_only`)."""
    if not image or "$" in image:
        return ()
    repo, tag = split_image(image)
    last = repo.rsplit("/", 1)[-1]
    for key in (repo, "/".join(repo.split("/")[-2:]), last):
        if key in RUNTIME_ONLY:
            return ()
        if key in IMAGES:
            return IMAGES[key](tag)
    # An image derived from a known one, by the words of its name and tag.
    found = _word_programs(re.split(r"[-_.]", last), tag, named=True)
    found |= _word_programs(tag.split("-"), tag, named=False)
    return in_order(found)


def runtime_only(image: str | None) -> str | None:
    """Why `image` holds no build tool of its toolchain (an ASP.NET runtime image), else None."""
    if not image:
        return None
    repo, _tag = split_image(image)
    for key in (repo, "/".join(repo.split("/")[-2:])):
        if key in RUNTIME_ONLY:
            return RUNTIME_ONLY[key]
    return None


# What a program cannot run without (a package manager its interpreter): where that is absent,
# it need not be looked for (`imageprobe`).
REQUIRES = {"composer": "php", "drush": "php", "wp": "php", "npm": "node", "npx": "node",
            "yarn": "node", "pnpm": "node", "bunx": "bun", "pip": "python", "pytest": "python",
            "poetry": "python", "gem": "ruby", "bundle": "ruby", "rails": "ruby", "rake": "ruby",
            "gofmt": "go", "mvn": "java", "gradle": "java", "mix": "elixir", "iex": "elixir",
            "pg_dump": "psql", "mysqldump": "mysql", "mariadb-dump": "mariadb"}

# What a program implies: the package manager ships with (or cannot run without) its toolchain.
_IMPLIES = {"npm": ("node", "npx"), "npx": ("node",), "yarn": ("node",), "pnpm": ("node",),
            "composer": ("php",), "drush": ("php",), "wp": ("php",), "pip": ("python",),
            "bundle": ("ruby",), "rails": ("ruby",), "rake": ("ruby",), "mvn": ("java",),
            "gradle": ("java",), "mix": ("elixir",), "iex": ("elixir",), "bunx": ("bun",)}
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
    script = shell_script(words)
    if script is not None:
        if depth > 3:
            return ()
        found: set[str] = set()
        for command in script_commands(script):
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


def shell_script(argv: Sequence[str]) -> str | None:
    """The script of `sh -c SCRIPT` (also `bash -lc`, `sh -euc`), else None."""
    if len(argv) >= 3 and posixpath.basename(argv[0]) in _SHELLS and \
            re.fullmatch(r"-[a-z]*c[a-z]*", argv[1]):
        return argv[2]
    return None


def script_commands(script: str) -> list[list[str]]:
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
