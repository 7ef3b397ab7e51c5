"""What init knows about images and Dockerfiles: which programs they have."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar_gen.scaffold.dockerfile import installed_by, read_dockerfile
from sidecar_gen.scaffold.programs import (
    CATALOGUE,
    DB_CLIENTS,
    image_programs,
    launched,
    split_image,
)
from sidecar_gen.validate.bridge import RESERVED_COMMANDS, RESERVED_PREFIX


@pytest.mark.parametrize(("image", "expected"), [
    ("php:8.3-fpm", ("php",)),  # stock php images have no composer
    ("composer:2", ("composer", "php")),
    ("docker.io/library/golang:1.23@sha256:abc", ("go", "gofmt")),
    ("python:3.12-slim", ("python", "pip")),  # ... and no pytest
    ("node:22-alpine", ("node", "npm", "npx", "yarn")),
    ("bitnami/postgresql:16", ("psql", "pg_dump")),
    ("ghcr.io/immich-app/postgres:14-vectorchord0.4.3@sha256:32", ("psql", "pg_dump")),
    ("mariadb:11", ("mariadb", "mariadb-dump")),
    ("mariadb:11.4.2-noble", ("mariadb", "mariadb-dump")),
    ("mariadb:lts", ("mariadb", "mariadb-dump")),
    ("mariadb", ("mariadb", "mariadb-dump")),
    ("mariadb:10.11", ("mysql", "mysqldump")),
    ("mariadb:10-focal", ("mysql", "mysqldump")),
    ("mysql/mysql-server:8.0", ("mysql", "mysqldump")),
    ("mongo:4.4", ("mongo",)),
    ("mongo:5.0", ("mongosh", "mongo")),
    ("mongo:7", ("mongosh",)),
    ("localhost:5000/team/redis:7", ("redis-cli",)),
    ("valkey/valkey:8.1-alpine", ("valkey-cli",)),
    ("wordpress:latest", ("php",)),
    ("mimidots/php7.4", ("php",)),
    ("tiangolo/uvicorn-gunicorn-fastapi:python3.9-slim", ("python", "pip")),
    ("dunglas/frankenphp:1-php8.5", ("php",)),  # built on php:*-zts
    ("dunglas/frankenphp:latest", ("php",)),
    ("example/app:1-php8.3-alpine", ("php",)),  # a toolchain+version part of the tag
    ("nikolaik/python-nodejs:python3.12-nodejs22", ("node", "npm", "npx", "python", "pip")),
    ("example/app:2-alpine3.20", ()),  # a version alone says nothing
    ("phpmyadmin:5", ()),
    ("prometheuscommunity/postgres-exporter", ()),
    ("node-red/node-red", ()),
    ("sidecar-test/busybox:latest", ()),
    ("${IMAGE}", ()),
])
def test_image_knowledge(image: str, expected: tuple[str, ...]) -> None:
    assert image_programs(image) == expected


def test_split_image() -> None:
    assert split_image("registry.example.com:5000/a/b:1.2@sha256:x") == ("a/b", "1.2")
    assert split_image("PHP") == ("php", "latest")


def test_the_catalogue_never_proposes_what_validate_refuses() -> None:
    assert not set(CATALOGUE) & RESERVED_COMMANDS
    assert not [p for p in CATALOGUE if p.startswith(RESERVED_PREFIX)]
    assert set(CATALOGUE) >= DB_CLIENTS


SAIL_LIKE = """\
FROM ubuntu:22.04
ARG NODE_VERSION=20
ARG MYSQL_CLIENT="mysql-client"
WORKDIR /var/www/html
RUN apt-get update \\
    && apt-get install -y php8.3-cli php8.3-dev \\
       php8.3-mysql \\
    && curl -sLS https://getcomposer.org/installer | php -- --install-dir=/usr/bin/ \\
    && curl -fsSL https://deb.nodesource.com/setup_$NODE_VERSION.x | bash - \\
    && apt-get install -y nodejs \\
    && npm install -g pnpm bun \\
    # a comment inside the continuation
    && apt-get install -y $MYSQL_CLIENT \\
    && apt-get install -y postgresql-client-17
"""


def test_install_lines() -> None:
    facts = read_dockerfile(SAIL_LIKE)
    assert facts.base == "ubuntu:22.04"
    assert facts.workdir == "/var/www/html"
    assert facts.installed == {"php", "composer", "node", "npm", "npx", "pnpm", "bun", "mysql",
                               "mysqldump", "psql", "pg_dump"}


def test_build_args_override_arg_defaults() -> None:
    text = 'ARG MYSQL_CLIENT="mysql-client"\nFROM debian\nRUN apt-get install -y $MYSQL_CLIENT\n'
    assert read_dockerfile(text, {"MYSQL_CLIENT": "redis-tools"}).installed == {"redis-cli"}


MULTI_STAGE = """\
# syntax=docker/dockerfile:1.4
ARG PY=3.12
FROM --platform=$BUILDPLATFORM node:22 AS assets
WORKDIR /app/assets
RUN <<EOF
yarn install
EOF

FROM python:${PY}-slim AS app
COPY --from=ghcr.io/astral-sh/uv:0.8 /uv /uvx /usr/local/bin/
RUN pip install --no-cache-dir "pytest>=8" poetry==1.8
WORKDIR /app
WORKDIR src

FROM app AS dev
RUN gem install bundler

FROM scratch AS prod
COPY --from=app /app /app
"""


@pytest.mark.parametrize(("target", "base", "installed", "workdir"), [
    ("assets", "node:22", set(), "/app/assets"),
    ("app", "python:3.12-slim", {"uv", "pytest", "poetry"}, "/app/src"),
    ("dev", "python:3.12-slim", {"uv", "pytest", "poetry", "bundle"}, "/app/src"),
    (None, "scratch", set(), None),
    ("no-such-stage", "scratch", set(), None),
])
def test_stages_and_targets(target: str | None, base: str, installed: set[str],
                            workdir: str | None) -> None:
    facts = read_dockerfile(MULTI_STAGE, {}, target)
    assert (facts.base, set(facts.installed), facts.workdir) == (base, installed, workdir)


def test_an_unset_arg_in_from_is_no_base() -> None:
    assert read_dockerfile("ARG IMAGE\nFROM ${IMAGE}\n").base is None
    assert read_dockerfile("ARG IMAGE\nFROM ${IMAGE}\n", {"IMAGE": "php:8"}).base == "php:8"


@pytest.mark.parametrize(("run", "expected"), [
    ("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go",
     {"go", "gofmt"}),
    ("apk add --no-cache nodejs npm", {"node", "npm", "npx"}),
    ("apt-get remove -y nodejs", set()),
    ("echo apt-get install nodejs", set()),
    ("python -m pip install -U pip pytest[testing]", {"pytest"}),
    ("corepack enable", {"yarn", "pnpm"}),
    ("curl -sSL https://install.python-poetry.org | python3 -", {"poetry"}),
    ("install-php-extensions @composer apcu intl", {"composer"}),
    ("install-php-extensions apcu intl", set()),
    ("npm install -g ./pnpm.tgz ./cli.tgz", {"pnpm"}),
    ("npm install -g /tmp/yarn-1.22.22.tgz", {"yarn"}),
    # A heredoc body is a shell script with its own continuations (dunglas/symfony-docker).
    ("<<-EOF\n\tapt-get install -y \\\n\t\tgit \\\n\t\tnodejs\n"
     "\tinstall-php-extensions \\\n\t\t@composer \\\n\t\tzip\n", {"node", "composer"}),
])
def test_run_lines(run: str, expected: set[str]) -> None:
    assert installed_by(run) == expected


@pytest.mark.parametrize(("text", "launch"), [
    ('FROM php:8 AS base\nCMD ["php", "app/http.php"]\nFROM base AS dev\nRUN true\n',
     (("php", "app/http.php"),)),  # inherited through stages
    ('FROM x\nENTRYPOINT ["docker-entrypoint.sh"]\nCMD ["node", "server.js"]\n',
     (("docker-entrypoint.sh",), ("node", "server.js"))),
    ('FROM x AS a\nCMD ["node"]\nFROM a\nENTRYPOINT ["/e"]\n', (("/e",),)),  # resets CMD
    ("FROM x\nCMD bundle exec rails s\n", (("/bin/sh", "-c", "bundle exec rails s"),)),
    ("FROM x\n", ()),
])
def test_what_the_image_starts_with(text: str, launch: tuple[tuple[str, ...], ...]) -> None:
    assert read_dockerfile(text).launch == launch


@pytest.mark.parametrize(("argv", "programs"), [
    (["php", "-e", "app/http.php"], ("php",)),
    (["sh", "-c", "pnpm exec prisma migrate deploy"], ("node", "pnpm")),
    (["bash", "-c", "rm -f x.pid; bundle exec rails s -p 3000"], ("ruby", "bundle", "rails")),
    (["sh", "-c", "if [ -f x ]; then exec php -S 0:80; fi"], ("php",)),
    (["sh", "-c", "which php || echo none"], ()),  # asking is not running
    (["bundle", "exec", "rails", "s"], ("ruby", "bundle", "rails")),
    (["/bin/sh", "-c", "npm ci && npm run dev"], ("node", "npm", "npx")),
    (["env", "A=1", "exec", "python", "manage.py"], ("python",)),
    (["tini", "--", "/usr/local/bin/node", "index.js"], ("node",)),
    (["/opt/netbox/venv/bin/python", "manage.py"], ()),  # not the `python` on PATH
    (["dev_server"], ()),
    ([], ()),
    (["sh", "-c", "'unbalanced"], ()),
    (["sh", "-c", "sh -c 'sh -c \"sh -c \\\"sh -c node\\\"\"'"], ()),  # nesting is bounded
])
def test_programs_a_start_command_runs(argv: list[str], programs: tuple[str, ...]) -> None:
    assert launched(argv) == programs


_LINES = st.lists(st.one_of(
    st.sampled_from(["FROM", "FROM php:8 AS", "FROM ${X}", "FROM ${X:?no}", "FROM base AS base",
                     "ARG", "ARG X=${Y:-php}", "ENV", "ENV A", "ENV A=$B", "WORKDIR", "WORKDIR ..",
                     "RUN <<EOF", "EOF", "RUN \\", "RUN apt-get install", "COPY --from",
                     "COPY --from=x", "# escape=`", "RUN 'unbalanced", "RUN a && && b ||"]),
    st.text(max_size=30)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(lines=_LINES, target=st.one_of(st.none(), st.sampled_from(["base", "x", ""])))
def test_any_dockerfile_text_is_read_without_error(lines: list[str], target: str | None) -> None:
    facts = read_dockerfile("\n".join(lines), {"X": "node:22"}, target)
    assert facts.installed <= set(CATALOGUE)
    assert facts.workdir is None or facts.workdir.startswith("/")
