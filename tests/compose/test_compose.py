"""Our compose reader against `docker compose config`: the same project, field for field.

Each case is a small project of a shape real ones have (override files, COMPOSE_FILE, .env
expansion, extends, include, !reset, profiles, project names); the test reads it with both and
compares everything init and validate use. Unit tests below pin the pieces (`.env`, `${...}`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar_gen.compose.env import InterpolationError, interpolate, parse_dotenv
from sidecar_gen.compose.project import ComposeProject, load_project
from sidecar_gen.compose.reader import normalize_project_name
from sidecar_gen.errors import InputError

CASES: dict[str, dict[str, Any]] = {
    "override-and-merge": {
        "files": {
            "compose.yaml": """
services:
  app:
    image: node:20
    working_dir: /app
    labels: [a=1, b=2]
    volumes: ['./src:/app/src', 'cache:/root/.npm']
    build:
      context: .
      args: {A: "1"}
  db:
    image: postgres:16
volumes: {cache: {}}
""",
            "compose.override.yaml": """
services:
  app:
    labels: {b: "3", c: "4"}
    volumes: ['./other:/app/src', './lib:/app/lib']
    build:
      args: [B=2]
  extra:
    image: ruby:3
""",
        },
    },
    "reset-and-override": {
        "files": {
            "compose.yaml": """
services:
  app:
    image: php:8.3
    volumes: ['./a:/a', './b:/b']
    working_dir: /a
""",
            "compose.override.yaml": """
services:
  app:
    volumes: !reset []
    working_dir: !reset null
  db:
    image: postgres
""",
            "third.yaml": "services:\n  app:\n    volumes: ['./c:/c']\n",
        },
        "env": {"COMPOSE_FILE": "compose.yaml:compose.override.yaml:third.yaml"},
    },
    "dotenv-compose-file-and-name": {
        "files": {
            ".env": """
export COMPOSE_PROJECT_NAME=from-dotenv
COMPOSE_PATH_SEPARATOR=;
COMPOSE_FILE=one.yml;sub/two.yml
BASE = ./data   # spaces and a comment
IMG="python:${PYV:-3.12}"
LIT='${NOT_EXPANDED}'
""",
            "one.yml": "name: ignored-by-the-env\nservices:\n  py:\n    image: $IMG\n"
                       "    labels: {lit: $LIT}\n",
            "sub/two.yml": "services:\n  py:\n    volumes: ['${BASE}:/data', '~/cache:/cache']\n",
        },
        "env": {"PYV": "3.11"},
    },
    "profiles": {
        "files": {
            "compose.yaml": """
services:
  always: {image: redis:7}
  empty: {image: redis:7, profiles: ["${UNSET_PROFILE:-}"]}
  tools: {image: python:3, profiles: [tools]}
  debug: {image: busybox, profiles: [debug, tools]}
  off: {image: busybox, profiles: [never]}
""",
            ".env": "COMPOSE_PROFILES=tools\n",
        },
    },
    "extends-across-files": {
        "files": {
            "compose.yaml": """
services:
  web:
    extends: {file: common/base.yml, service: app}
    working_dir: /srv
  worker:
    extends: web
    image: python:3.12-slim
""",
            "common/base.yml": """
services:
  app:
    image: python:3.12
    build: {context: ./ctx, args: [FROM_ENV]}
    volumes: ['./shared:/srv/shared', '.:/srv']
    labels: {tier: base}
""",
        },
        "env": {"FROM_ENV": "x"},
    },
    "include-with-its-own-folder-and-env": {
        "files": {
            "compose.yaml": "include:\n  - infra/db.yaml\n  - path: tools/tools.yaml\n"
                            "    project_directory: .\nservices:\n  app: {image: ruby:3.3}\n",
            "infra/db.yaml": "services:\n  db:\n    image: postgres:${PG:-14}\n"
                             "    volumes: ['./init:/docker-entrypoint-initdb.d']\n",
            "infra/.env": "PG=16\n",
            "tools/tools.yaml": "services:\n  tools:\n    image: node:22\n"
                                "    volumes: ['./tools:/tools']\n",
        },
    },
    "depends-on-conditions-and-restart": {
        "files": {
            "compose.yaml": """
services:
  app:
    image: node:22
    restart: unless-stopped
    depends_on:
      migrate: {condition: service_completed_successfully}
      db:
        condition: service_healthy
  migrate:
    image: node:22
    restart: no
    depends_on: [db]
  db:
    image: postgres:16
""",
            "compose.override.yaml": """
services:
  app:
    depends_on:
      seed: {condition: service_completed_successfully, required: false}
  seed:
    image: node:22
    restart: "on-failure:3"
""",
        },
    },
    "folder-name-normalized": {
        "folder": "My_Project.v2",
        "files": {"docker-compose.yml": "services:\n  api: {image: 'golang:1.23'}\n"},
    },
    "name-from-file": {
        "files": {"compose.yml": "name: ${NAME:-declared}\nservices:\n  api: {image: golang}\n"},
    },
}


def _make(root: Path, case: dict[str, Any]) -> Path:
    project = root / case.get("folder", "project")
    for rel, text in case["files"].items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    return project


def _view(project: ComposeProject) -> dict[str, Any]:
    return {"name": project.name, "files": project.files, "services": {
        name: (s.image, s.container_name, s.working_dir, s.binds, s.volumes, s.build, s.labels,
               s.user, s.depends_on, s.awaits, s.restart)
        for name, s in project.services.items()}}


@pytest.mark.parametrize("name", sorted(CASES))
def test_our_reader_matches_docker_compose_config(name: str, tmp_path: Path,
                                                 compose_cli: list[str]) -> None:
    case = CASES[name]
    project_dir = _make(tmp_path, case)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), **case.get("env", {})}
    cli = load_project(project_dir, prefer_cli=True, environ=env)
    ours = load_project(project_dir, prefer_cli=False, environ=env)
    assert cli is not None and ours is not None
    assert cli.via_cli, cli.cli_error
    assert not ours.via_cli
    assert _view(ours) == _view(cli)
    EXPECT[name](ours)


def _override(p: ComposeProject) -> None:
    app = p.services["app"]
    assert dict(app.labels) == {"a": "1", "b": "3", "c": "4"}
    assert [(Path(b.source).name, b.target) for b in app.binds] == [
        ("lib", "/app/lib"), ("other", "/app/src")]
    assert app.volumes == ("/root/.npm",)
    assert app.build is not None and dict(app.build.args) == {"A": "1", "B": "2"}
    assert set(p.services) == {"app", "db", "extra"}


def _reset(p: ComposeProject) -> None:
    app = p.services["app"]
    assert [b.target for b in app.binds] == ["/c"] and app.working_dir is None


def _dotenv(p: ComposeProject) -> None:
    py = p.services["py"]
    assert (p.name, py.image, dict(py.labels)) == ("from-dotenv", "python:3.11",
                                                   {"lit": "${NOT_EXPANDED}"})
    assert [Path(f).name for f in p.files] == ["one.yml", "two.yml"]
    sources = {b.target: b.source for b in py.binds}
    assert sources["/data"] == str(p.directory / "data")  # the project folder, not sub/
    assert sources["/cache"].endswith("/home/cache")


def _profiles(p: ComposeProject) -> None:
    assert set(p.services) == {"always", "tools", "debug"}


def _extends(p: ComposeProject) -> None:
    web, worker = p.services["web"], p.services["worker"]
    base = str(p.directory / "common")
    assert {b.target: b.source for b in web.binds} == {"/srv": base,
                                                       "/srv/shared": f"{base}/shared"}
    assert web.working_dir == "/srv" and dict(web.labels) == {"tier": "base"}
    assert web.build is not None and web.build.context == f"{base}/ctx"
    assert dict(web.build.args) == {"FROM_ENV": "x"}
    assert (worker.image, worker.working_dir) == ("python:3.12-slim", "/srv")


def _include(p: ComposeProject) -> None:
    assert p.services["db"].image == "postgres:16"
    assert p.services["db"].binds[0].source == str(p.directory / "infra" / "init")
    assert p.services["tools"].binds[0].source == str(p.directory / "tools")


def _conditions(p: ComposeProject) -> None:
    app = p.services["app"]
    assert (app.depends_on, app.awaits, app.restart) == (("db", "migrate", "seed"),
                                                         ("migrate", "seed"), "unless-stopped")
    assert (p.services["migrate"].restart, p.services["seed"].restart) == ("no", "on-failure:3")


def _folder(p: ComposeProject) -> None:
    assert p.name == "my_projectv2"


def _named(p: ComposeProject) -> None:
    assert p.name == "declared"
    assert p.names().name_source == "name"


EXPECT = {"override-and-merge": _override, "reset-and-override": _reset,
          "dotenv-compose-file-and-name": _dotenv, "profiles": _profiles,
          "extends-across-files": _extends, "include-with-its-own-folder-and-env": _include,
          "folder-name-normalized": _folder,
          "depends-on-conditions-and-restart": _conditions, "name-from-file": _named}


def test_override_tag_replaces_instead_of_merging(tmp_path: Path) -> None:
    # `!override` is compose 2.24.4's; the CLI on this machine may be older, so this one is ours.
    project = _make(tmp_path, {"files": {
        "compose.yaml": "services:\n  app:\n    image: php\n    volumes: ['./a:/a']\n"
                        "    labels: [x=1]\n",
        "compose.override.yaml": "services:\n  app:\n    volumes: !override ['./c:/c']\n"
                                 "    labels: !override {y: '2'}\n"}})
    loaded = load_project(project, prefer_cli=False, environ={})
    assert loaded is not None
    app = loaded.services["app"]
    assert ([b.target for b in app.binds], dict(app.labels)) == (["/c"], {"y": "2"})


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    project = _make(tmp_path, {"files": {
        ".env": "IMAGE=php:8.1\nCOMPOSE_PROJECT_NAME=dotenv\n",
        "compose.yaml": "services:\n  app: {image: $IMAGE}\n"}})
    env = {"PATH": os.environ["PATH"], "IMAGE": "php:8.3", "COMPOSE_PROJECT_NAME": "shell"}
    loaded = load_project(project, prefer_cli=False, environ=env)
    assert loaded is not None
    assert (loaded.name, loaded.services["app"].image) == ("shell", "php:8.3")
    assert loaded.names().name_source == "environment"


def test_unreadable_projects_are_input_errors(tmp_path: Path) -> None:
    project = _make(tmp_path, {"files": {"compose.yaml": "services:\n  a: {image: x}\n",
                                         ".env": "BAD KEY=1\n"}})
    with pytest.raises(InputError, match=r"\.env: line 1"):
        load_project(project, prefer_cli=False, environ={})
    (project / ".env").write_text("COMPOSE_FILE=missing.yml\n")
    with pytest.raises(InputError, match=r"missing\.yml: no such compose file"):
        load_project(project, prefer_cli=False, environ={})
    (project / ".env").write_text("COMPOSE_PROJECT_NAME=Not Valid\n")
    with pytest.raises(InputError, match="invalid project name"):
        load_project(project, prefer_cli=False, environ={})
    (project / ".env").unlink()
    (project / "compose.yaml").write_text("services:\n  a:\n    image: x\n    image: y\n")
    with pytest.raises(InputError, match=r"line 4: duplicate key 'image' \(first defined on "
                                         r"line 3\)"):
        load_project(project, prefer_cli=False, environ={})
    (project / "compose.yaml").write_text("services:\n  a:\n    extends: b\n  b:\n"
                                          "    extends: a\n")
    with pytest.raises(InputError, match="circular extends"):
        load_project(project, prefer_cli=False, environ={})
    assert load_project(tmp_path / "nothing-here", prefer_cli=False, environ={}) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("${A}-$A-${B:-dflt}-${EMPTY:-e}-${EMPTY-f}-$$A", "1-1-dflt-e--$A"),
    ("${A:+alt}|${EMPTY:+alt}|${EMPTY+set}|${NONE+set}", "alt||set|"),
    ("${NONE:-${B:-${A}}}x", "1x"),
    ("a $ b $1 ${A}}", "a $ b $1 1}"),
    ("${N:-" * 16 + "deep" + "}" * 16, "deep"),
])
def test_interpolation(text: str, expected: str) -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate(text, env.get) == expected


@pytest.mark.parametrize("text", ["${NONE:?say why}", "${1A}", "${A", "${A%x}",
                                  "${N:-" * 18 + "x" + "}" * 18])
def test_interpolation_errors(text: str) -> None:
    with pytest.raises(InterpolationError):
        interpolate(text, {"A": "1"}.get)


def test_dotenv_parsing_follows_compose() -> None:
    text = ("A=from_file\nB=${A}\nC=\"q ${A}\\tx\" # c\nD='lit ${A}'\nE=unq ${A} # comment\n"
            "export H=exported\nI=\"multi\nline\"\nJ=val#nohash\nK=\nINHERIT\nFROM_OS\n")
    values = parse_dotenv(text, {"FROM_OS": "os", "A": "shell"})
    assert values == {"A": "from_file", "B": "shell", "C": "q shell\tx", "D": "lit ${A}",
                      "E": "unq shell", "H": "exported", "I": "multi\nline",
                      "J": "val#nohash", "K": "", "FROM_OS": "os"}


@pytest.mark.parametrize(("raw", "expected"), [("My Project", "myproject"), ("_x-Y.z", "x-yz"),
                                                ("ünï", "n")])
def test_project_name_normalization(raw: str, expected: str) -> None:
    assert normalize_project_name(raw) == expected


# --- hostile or broken projects: a clear InputError or a project, never anything else ----------

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                     st.sampled_from(["php:8.3", ".:/app", "./x:/y:ro", "~/a:/b", "/abs:/t",
                                      "a=b", "${X:-1}", "$$", "${", "tools", "", "..", "/"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["context", "dockerfile", "target", "args", "service",
                                     "file", "type", "source", "target", "path", "x"]),
                    inner, max_size=4)), max_leaves=12)
_SERVICE = st.dictionaries(st.sampled_from(["image", "build", "volumes", "labels", "extends",
                                            "working_dir", "container_name", "profiles",
                                            "depends_on", "user", "ports"]),
                           _VALUES, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(services=st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.one_of(_SERVICE, _SCALARS), max_size=3),
       include=st.one_of(st.none(), _VALUES))
def test_any_service_shape_is_a_project_or_an_input_error(tmp_path_factory: pytest.TempPathFactory,
                                                           services: dict[str, Any],
                                                           include: Any) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    doc: dict[str, Any] = {"services": services}
    if include is not None:
        doc["include"] = include
    (root / "compose.yaml").write_text(json.dumps(doc))
    try:
        project = load_project(root, prefer_cli=False, environ={"X": "v"})
    except InputError as exc:
        assert "\n" not in exc.message
        return
    assert project is not None
    for service in project.services.values():
        assert service.image is None or isinstance(service.image, str)
        assert all(b.source.startswith("/") for b in service.binds)
