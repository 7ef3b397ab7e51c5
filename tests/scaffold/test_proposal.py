"""`sidecar init`: what it proposes for a compose project, in both modes, and how it writes it.

Both readers (the compose CLI and our own) run on the same projects wherever the compose CLI is
installed; `compose_modes` gives the modes to compare.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import unavailable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sidecar_gen.cli import app
from sidecar_gen.compose.project import load_project
from sidecar_gen.config import load_bridge
from sidecar_gen.errors import InputError
from sidecar_gen.fileplan import FileStatus
from sidecar_gen.render import run_render
from sidecar_gen.runtime.pathmap import is_within
from sidecar_gen.scaffold.proposal import InitResult, propose, render_bridge, run_init
from sidecar_gen.validate.bridge import validate_file, validate_text
from sidecar_gen.validate.check import CheckOptions, run_check

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent for p in REPO.glob("examples/*/compose.yaml"))
runner = CliRunner()


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A shell environment without the developer's COMPOSE_* or image variables."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), **extra}


@pytest.fixture(params=["cli", "own"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each test that takes `mode` runs with `docker compose config` and with our reader."""
    if request.param == "cli":
        request.getfixturevalue("compose_cli")
    return str(request.param)


def init(directory: Path, mode: str, env: dict[str, str], **kwargs: object) -> InitResult:
    result = run_init(directory, prefer_cli=mode == "cli", probe=False, environ=env,
                      **kwargs)  # type: ignore[arg-type]
    project = result.proposal.project
    if project is not None:
        assert project.via_cli is (mode == "cli"), project.cli_error
    return result


def routes(directory: Path) -> dict[str, tuple[object, ...]]:
    bridge = load_bridge(directory / ".sidecar" / "bridge.yaml")
    return {name: (r.container, r.argv, r.workdir, r.paths, r.user)
            for name, r in bridge.commands.items()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_hold_what_init_writes(example: Path, tmp_path: Path, mode: str) -> None:
    copy = tmp_path / example.name
    shutil.copytree(example, copy, ignore=shutil.ignore_patterns(".sidecar"))
    result = init(copy, mode, clean_env(tmp_path))
    assert [f.status for f in result.files] == [FileStatus.CREATED, FileStatus.CREATED]
    for name in ("bridge.yaml", "allowed-domains.txt"):
        written = (copy / ".sidecar" / name).read_text()
        assert written == (example / ".sidecar" / name).read_text(), name


def test_routes_by_service_never_by_folder_dependent_names(tmp_path: Path, mode: str) -> None:
    # Two checkouts of one project under different folder names get the same bridge.yaml.
    texts = []
    for folder in ("shop", "Shop Copy"):
        root = tmp_path / folder
        root.mkdir()
        (root / "compose.yaml").write_text(
            "services:\n  php:\n    image: php:8.3-fpm\n    volumes: ['.:/app']\n"
            "  api:\n    image: golang:1.23\n    container_name: shop-api\n")
        init(root, mode, clean_env(tmp_path))
        texts.append((root / ".sidecar" / "bridge.yaml").read_text())
    assert texts[0] == texts[1]
    bridge = load_bridge(tmp_path / "shop" / ".sidecar" / "bridge.yaml")
    assert bridge.containers == {}
    assert bridge.stack.project is None
    assert {r.container for r in bridge.commands.values()} == {"php", "api"}
    assert "shop-api" not in texts[0] and "shop-php-1" not in texts[0]


def test_override_files_and_profiles_are_read(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  db:\n    image: postgres:16\n")
    (tmp_path / "compose.override.yaml").write_text(
        "services:\n  app:\n    image: node:20\n    volumes: ['./src:/srv/app']\n"
        "  tools:\n    image: python:3.12\n    profiles: [tools]\n")
    init(tmp_path, mode, clean_env(tmp_path))
    assert set(routes(tmp_path)) == {"psql", "pg_dump", "node", "npm", "npx", "yarn"}
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=tools\n")
    init(tmp_path, mode, clean_env(tmp_path), force=True)
    assert {"python", "pip"} <= set(routes(tmp_path))


def test_compose_file_from_dotenv_with_its_separator(tmp_path: Path, mode: str) -> None:
    (tmp_path / "base.yml").write_text("services:\n  web:\n    image: ruby:3.3\n")
    (tmp_path / "dev").mkdir()
    # Paths in a later file are relative to the project folder, not to that file's folder.
    (tmp_path / "dev" / "extra.yml").write_text(
        "services:\n  web:\n    volumes: ['./app:/rails']\n    working_dir: /rails\n")
    (tmp_path / ".env").write_text(
        "COMPOSE_PATH_SEPARATOR=;\nCOMPOSE_FILE=base.yml;dev/extra.yml\n")
    result = init(tmp_path, mode, clean_env(tmp_path))
    assert result.proposal.files == "base.yml, dev/extra.yml"
    ruby = routes(tmp_path)["ruby"]
    assert ruby == ("web", ("ruby",), "/rails", (("/workspace/app", "/rails"),),
                    "${PUID}:${PGID}")


def test_pwd_binds_do_not_follow_the_callers_directory(tmp_path: Path, mode: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "compose.yaml").write_text(
        "services:\n  php:\n    image: php:8.3\n    volumes: ['${PWD}:/var/www/html']\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    init(project, mode, clean_env(tmp_path, PWD=str(elsewhere)))
    assert routes(project)["php"][3] == (("/workspace", "/var/www/html"),)


def test_a_single_file_mount_is_never_the_workdir(tmp_path: Path, mode: str) -> None:
    (tmp_path / "init.sql").write_text("select 1;\n")
    (tmp_path / "php.ini").write_text("")
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  db:\n    image: mysql:8.0\n"
        "    volumes: ['./init.sql:/docker-entrypoint-initdb.d/init.sql']\n"
        "  php:\n    image: php:8.3-cli\n"
        "    volumes: ['./php.ini:/usr/local/etc/php/php.ini', './src:/app/src',"
        " './tests:/app/tests']\n")
    init(tmp_path, mode, clean_env(tmp_path))
    found = routes(tmp_path)
    assert found["mysql"][2:4] == ("/", ())
    # No working_dir and two mounted folders: the workdir is one of them, never "/".
    assert found["php"][2] == "/app/src"
    assert found["php"][3] == (("/workspace/tests", "/app/tests"), ("/workspace/src", "/app/src"))
    strict = run_check(CheckOptions(files=[tmp_path / ".sidecar" / "bridge.yaml"], strict=True))
    assert strict.exit_code == 0, strict.report.findings


def test_user_only_where_the_project_is_mounted(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: python:3.12\n    volumes: ['.:/code']\n"
        "  db:\n    image: postgres:16\n    volumes: ['./pgdata:/var/lib/postgresql/data']\n"
        "  job:\n    image: python:3.12\n")
    result = init(tmp_path, mode, clean_env(tmp_path))
    found = routes(tmp_path)
    assert found["python"][4] == "${PUID}:${PGID}"
    # A database service's clients work on the database, not on files: no user, no mapping.
    assert found["psql"][2:] == ("/", (), None)
    assert result.proposal.notes == [
        "'python', 'pip' are also in service 'job'; routed to 'app': it mounts the project"]


def test_versions_decide_the_commands(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  new:\n    image: mariadb:11.4\n  old:\n    image: mariadb:10.11\n"
        "  php:\n    image: php:8.3-fpm\n  py:\n    image: python:3.12-slim\n")
    init(tmp_path, mode, clean_env(tmp_path))
    found = routes(tmp_path)
    assert found["mariadb"][0] == found["mariadb-dump"][0] == "new"
    assert found["mysql"][0] == found["mysqldump"][0] == "old"
    assert "composer" not in found and "pytest" not in found


def test_build_only_services_are_read_from_their_dockerfile(tmp_path: Path, mode: str) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "php.Dockerfile").write_text(
        "ARG PHP=8.2\nFROM mimidots/php${PHP}-fpm AS base\nWORKDIR /var/www\n"
        "FROM base AS dev\nCOPY --from=composer:2 /usr/bin/composer /usr/local/bin/composer\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends \\\n"
        "    default-mysql-client \\\n    && rm -rf /var/lib/apt/lists/*\n"
        "FROM base AS prod\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    build: {context: ., dockerfile: docker/php.Dockerfile, "
        "target: dev}\n    volumes: ['.:/var/www']\n")
    init(tmp_path, mode, clean_env(tmp_path))
    text = (tmp_path / ".sidecar" / "bridge.yaml").read_text()
    assert set(routes(tmp_path)) == {"php", "composer", "mysql", "mysqldump"}
    assert "php:  # docker/php.Dockerfile: FROM mimidots/php8.2-fpm\n" in text
    assert routes(tmp_path)["php"][2] == "/var/www"


def test_unknown_services_get_a_commented_example_never_a_placeholder(tmp_path: Path,
                                                                     mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  mail:\n    image: axllent/mailpit\n  search:\n    build: ./search\n")
    init(tmp_path, mode, clean_env(tmp_path))
    config = tmp_path / ".sidecar" / "bridge.yaml"
    text = config.read_text()
    assert "  # mail (image axllent/mailpit): no program init knows" in text
    assert "  #   TOOL: {container: mail, exec: TOOL}" in text
    assert "  # search (build search: Dockerfile does not exist)" in text
    # Nothing routed: valid (Claude gets its own container), and validate says so in a note.
    assert [(f.rule, str(f.severity)) for f in validate_file(config)] == [("no-commands", "note")]
    assert run_check(CheckOptions(files=[config], strict=True)).exit_code == 0


def test_rerun_after_render_leaves_the_sidecar_out(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: node:22\n    volumes: ['.:/app']\n")
    env = clean_env(tmp_path)
    init(tmp_path, mode, env)
    first = (tmp_path / ".sidecar" / "bridge.yaml").read_text()
    config = (tmp_path / ".sidecar" / "bridge.yaml")
    config.write_text(first.replace("  workspace: /workspace\n",
                                    "  workspace: /workspace\n  viewer: {enabled: true}\n"))
    run_render(tmp_path)
    result = init(tmp_path, mode, env, force=True)
    project = result.proposal.project
    assert project is not None
    assert sorted(project.sidecar_services) == ["claude", "sidecar-broker", "sidecar-gate",
                                                "viewer"]
    assert set(project.services) == {"web"}
    assert all(c.route.container == "web" for c in result.proposal.commands)


def test_cli_failure_is_explained_and_our_reader_answers_alike(tmp_path: Path,
                                                              compose_cli: list[str]) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: ${APP_IMAGE:-php:8.3}\n    env_file: missing.env\n")
    result = run_init(tmp_path, probe=False, environ=clean_env(tmp_path))
    project = result.proposal.project
    assert project is not None and not project.via_cli
    assert project.cli_error is not None and "missing.env" in project.cli_error
    assert "\n" not in project.cli_error
    assert set(routes(tmp_path)) == {"php"}
    cli = runner.invoke(app, ["init", "--dir", str(tmp_path), "--force", "--no-probe"])
    assert cli.exit_code == 0
    assert cli.output.splitlines()[0].startswith("docker compose config failed: ")


PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


def test_a_docker_cli_without_the_compose_plugin_says_so_in_its_words(
        tmp_path: Path, compose_cli: list[str], sidecar_cli: list[str]) -> None:
    # The real docker CLI, in a mount namespace where every plugin folder is empty: what a user
    # whose HOME has no plugin (and a machine without the system one) runs.
    if shutil.which("unshare") is None or os.geteuid() != 0:
        unavailable("hiding the compose plugin needs unshare and root")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    image: php:8.3\n")
    hide = "; ".join(f"mount --bind {empty} {d}" for d in PLUGIN_DIRS if os.path.isdir(d))
    script = f"{hide}; exec \"$@\""
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *sidecar_cli, "init",
                           "--dir", str(tmp_path), "--no-probe"],
                          env=clean_env(tmp_path), capture_output=True, text=True)
    if done.returncode != 0 and "mount" in done.stderr:
        unavailable(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("docker compose config failed: docker has no compose command for "
                            "this user ("), first
    assert "docker --help" not in first
    assert set(routes(tmp_path)) == {"php"}  # our reader answered


def test_both_readers_refuse_what_compose_refuses(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: php\n    environment:\n      KEY: ${KEY:?set KEY}\n")
    with pytest.raises(InputError, match="required variable KEY is missing a value: set KEY"):
        init(tmp_path, mode, clean_env(tmp_path))
    assert not (tmp_path / ".sidecar").exists()


def test_a_compose_file_over_the_render_limit_is_refused(tmp_path: Path) -> None:
    big = "services:\n  app:\n    image: php\n" + "# padding\n" * 110_000
    (tmp_path / "compose.yaml").write_text(big)
    result = runner.invoke(app, ["init", "--dir", str(tmp_path), "--no-probe"])
    assert result.exit_code == 2
    assert "compose.yaml: file is larger than 1024 KiB" in result.output
    assert not (tmp_path / ".sidecar").exists()


def test_no_compose_file_gives_a_starter_that_says_what_is_missing(tmp_path: Path) -> None:
    result = run_init(tmp_path, probe=False, environ=clean_env(tmp_path))
    assert result.proposal.project is None
    config = tmp_path / ".sidecar" / "bridge.yaml"
    text = config.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "No compose file was found" in text
    assert [f.rule for f in validate_file(config)] == ["no-commands"]


def test_idempotent_and_safe(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  php:\n    image: php\n")
    env = clean_env(tmp_path)
    run_init(tmp_path, prefer_cli=False, probe=False, environ=env)
    bridge = tmp_path / ".sidecar" / "bridge.yaml"
    before = bridge.stat().st_mtime_ns
    again = run_init(tmp_path, prefer_cli=False, probe=False, environ=env)
    assert [f.status for f in again.files] == [FileStatus.OK, FileStatus.OK]
    assert bridge.stat().st_mtime_ns == before
    bridge.write_text("mine\n")
    kept = run_init(tmp_path, prefer_cli=False, probe=False, environ=env)
    assert kept.files[0].status is FileStatus.SKIPPED
    assert bridge.read_text() == "mine\n"
    forced = run_init(tmp_path, prefer_cli=False, probe=False, environ=env, force=True)
    assert forced.files[0].status is FileStatus.CHANGED
    assert [p.name for p in bridge.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_init_from_another_directory_with_dir(tmp_path: Path, compose_cli: list[str],
                                              sidecar_cli: list[str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "compose.yaml").write_text(
        "services:\n  go:\n    image: golang:1.23\n    volumes: ['${PWD}/cmd:/src/cmd']\n")
    env = clean_env(tmp_path)
    done = subprocess.run([*sidecar_cli, "init", "--dir", str(project), "--no-probe"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "via docker compose config" in done.stdout
    assert routes(project)["go"][3] == (("/workspace/cmd", "/src/cmd"),)


_IMAGES = st.sampled_from(["php:8.3-fpm", "node:22", "postgres:16", "mariadb:11", "redis:7",
                           "python:3.12", "golang:1.23", "axllent/mailpit", "busybox"])
_FOLDERS = st.sampled_from([".", "./src", "./a b", "./ünï", "./deep/er", "./x.y", "./file.txt"])
_TARGETS = st.sampled_from(["/app", "/app/src", "/srv", "/var/www/html", "/", "/a b", "/x:y"])


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(services=st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True),
    st.fixed_dictionaries({"image": _IMAGES}, optional={
        "volumes": st.lists(st.tuples(_FOLDERS, _TARGETS), max_size=3),
        "working_dir": _TARGETS}), min_size=1, max_size=4))
def test_inits_own_output_passes_validate_strict(tmp_path_factory: pytest.TempPathFactory,
                                                 services: dict[str, dict[str, Any]]) -> None:
    root = tmp_path_factory.mktemp("proj")
    (root / "file.txt").write_text("")
    spec = {name: {**s, "volumes": [f"{a}:{b}" for a, b in s.get("volumes", [])]}
            for name, s in services.items()}
    (root / "compose.yaml").write_text(json.dumps({"services": spec}))
    project = load_project(root, prefer_cli=False, environ={"PATH": os.environ["PATH"]})
    assert project is not None
    proposal = propose(project)
    findings = validate_text(render_bridge(proposal), "bridge.yaml", project.names())
    if proposal.commands:
        assert findings == []
        for command in proposal.commands:
            targets = [t for _, t in command.route.paths]
            assert not targets or any(is_within(command.route.workdir, t) for t in targets)
    else:
        assert [f.rule for f in findings] == ["no-commands"]


def test_what_a_service_is_started_with_says_what_it_has(tmp_path: Path, mode: str) -> None:
    # An image init does not know, started with `php` (compose) or `node` (Dockerfile CMD);
    # a worker whose script runs `bundle exec` after a clean-up command.
    (tmp_path / "Dockerfile").write_text('FROM example/base:2\nCMD ["node", "server.js"]\n')
    (tmp_path / "compose.yaml").write_text(
        "services:\n  api:\n    image: example/api:1\n    entrypoint: [php, -e, app/http.php]\n"
        "  web:\n    build: .\n"
        "  worker:\n    image: example/rails:1\n"
        "    command: bash -c \"rm -f tmp/pids/server.pid; bundle exec rails s\"\n"
        "  tool:\n    image: example/tool:1\n    command: /opt/venv/bin/python -m tool\n")
    init(tmp_path, mode, clean_env(tmp_path))
    found = routes(tmp_path)
    assert {name: found[name][0] for name in found} == {
        "php": "api", "node": "web", "ruby": "worker", "bundle": "worker", "rails": "worker"}
    text = (tmp_path / ".sidecar" / "bridge.yaml").read_text()
    assert "php:  # compose starts it: php -e app/http.php\n" in text
    assert "node:  # Dockerfile: starts node server.js\n" in text
    # A program run by a path off PATH is not the one a routed call finds.
    assert "  # tool (image example/tool:1): no program init knows" in text


def test_a_shared_program_goes_to_the_app_its_workers_wait_for(tmp_path: Path,
                                                                mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "x-app: &app\n  image: python:3.13\n  volumes: ['.:/app']\n"
        "services:\n  beat:\n    <<: *app\n    depends_on: [server]\n"
        "  server:\n    <<: *app\n    ports: ['5000:5000']\n"
        "  api:\n    <<: *app\n    ports: ['8000:8000']\n"
        "  cron:\n    <<: *app\n")
    init(tmp_path, mode, clean_env(tmp_path))
    assert routes(tmp_path)["python"][0] == "server"
    (tmp_path / "compose.yaml").write_text(
        "x-app: &app\n  image: python:3.13\n  volumes: ['.:/app']\n"
        "services:\n  beat:\n    <<: *app\n  web:\n    <<: *app\n    ports: ['80:80']\n")
    init(tmp_path, mode, clean_env(tmp_path), force=True)
    assert routes(tmp_path)["python"][0] == "web"


def test_folders_compose_watch_syncs_are_mapped_without_a_user(tmp_path: Path,
                                                                mode: str) -> None:
    (tmp_path / "backend").mkdir()
    (tmp_path / "compose.yaml").write_text(
        "services:\n  api:\n    image: python:3.13\n    working_dir: /app/backend\n"
        "    develop:\n      watch:\n"
        "        - {path: ./backend, action: sync, target: /app/backend, ignore: [.venv]}\n"
        "        - {path: ./backend/pyproject.toml, action: rebuild}\n")
    result = init(tmp_path, mode, clean_env(tmp_path))
    assert routes(tmp_path)["python"][2:] == (
        "/app/backend", (("/workspace/backend", "/app/backend"),), None)
    assert ("api gets the project by `docker compose watch` (copies): what commands write "
            "there stays in the container") in result.proposal.notes
    strict = run_check(CheckOptions(files=[tmp_path / ".sidecar" / "bridge.yaml"], strict=True))
    assert strict.exit_code == 0, strict.report.findings


def test_a_project_whose_services_are_all_in_inactive_profiles_says_so(tmp_path: Path,
                                                                       mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: node:22\n    profiles: [dev]\n"
        "  db:\n    image: postgres:16\n    profiles: [dev, db]\n")
    init(tmp_path, mode, clean_env(tmp_path))
    text = (tmp_path / ".sidecar" / "bridge.yaml").read_text()
    assert "each is in a profile\n# (`profiles:`) that COMPOSE_PROFILES does not name" in text
    init(tmp_path, mode, clean_env(tmp_path, COMPOSE_PROFILES="dev"), force=True)
    assert set(routes(tmp_path)) == {"node", "npm", "npx", "yarn", "psql", "pg_dump"}


@pytest.mark.parametrize(("override", "expected"), [
    ("develop: !reset null", ()),
    ("develop: {watch: !reset []}", ()),
    ("develop: !override {watch: [{path: ., action: sync, target: /app}]}",
     (("/workspace", "/app"),)),
    ("develop: !override {watch: [5, {path: 5}, {action: sync, target: /x}]}",
     ()),  # entries compose refuses, or without a path, map nothing
])
def test_start_commands_and_watch_read_with_reset_and_override(tmp_path: Path, override: str,
                                                                expected: tuple[object, ...]
                                                                ) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: example/x\n    command: [node, a]\n"
        "    develop: {watch: [{path: ., action: sync, target: /srv}]}\n")
    (tmp_path / "compose.override.yaml").write_text(f"services:\n  app:\n    {override}\n")
    # Our reader: compose versions differ in what they accept here, and it must never crash.
    result = run_init(tmp_path, prefer_cli=False, probe=False, environ=clean_env(tmp_path))
    assert [(c.name, c.route.paths) for c in result.proposal.commands] == [("node", expected)]


def test_a_watch_that_is_no_list_is_refused_in_one_line(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  app:\n    image: php\n    develop: {watch: 5}\n")
    with pytest.raises(InputError, match=r"services\.app: develop\.watch must be a list"):
        run_init(tmp_path, prefer_cli=mode == "cli", probe=False, environ=clean_env(tmp_path))


def _text(directory: Path) -> str:
    return (directory / ".sidecar" / "bridge.yaml").read_text()


def test_a_one_shot_step_never_wins_and_its_built_image_is_the_apps(tmp_path: Path,
                                                                    mode: str) -> None:
    # The migration builds the image and exits; the app runs that image (no build of its own)
    # with the same mount; the worker waits for the migration to complete.
    (tmp_path / "Dockerfile").write_text("FROM ruby:3.3-slim\nWORKDIR /rails\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  aaa-migrate:\n    build: .\n    image: shop:dev\n    volumes: ['.:/rails']\n"
        "    command: bundle exec rails db:migrate\n"
        "  web:\n    image: shop:dev\n    volumes: ['.:/rails']\n    ports: ['3000:3000']\n"
        "    command: bundle exec rails s\n"
        "    depends_on: {aaa-migrate: {condition: service_completed_successfully}}\n"
        "  worker:\n    image: shop:dev\n    volumes: ['.:/rails']\n"
        "    command: bundle exec sidekiq\n"
        "    depends_on: {aaa-migrate: {condition: service_completed_successfully}}\n")
    result = init(tmp_path, mode, clean_env(tmp_path))
    found = routes(tmp_path)
    assert {found[p][0] for p in ("ruby", "gem", "bundle", "rake", "rails")} == {"web"}
    assert found["ruby"][2] == "/rails"  # the built image's WORKDIR, shared by its users
    assert "  ruby:  # Dockerfile: FROM ruby:3.3-slim\n" in _text(tmp_path)
    assert ("'aaa-migrate' runs once and exits (others wait for it to complete): no command "
            "goes there") in result.proposal.notes
    assert ("'ruby', 'gem', 'bundle', 'rake' are also in service 'worker'; routed to 'web': it "
            "publishes ports") in result.proposal.notes


def test_a_dockerfile_from_an_image_the_project_builds_follows_that_build(tmp_path: Path,
                                                                          mode: str) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "Dockerfile").write_text("FROM php:8.3-fpm\n"
                                                  "RUN apt-get install -y nodejs npm\n")
    (tmp_path / "Dockerfile").write_text("FROM acme/base:local\nWORKDIR /var/www\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  base:\n    build: ./base\n    image: acme/base:local\n"
        "    command: 'true'\n    restart: 'no'\n"
        "  app:\n    build: .\n    volumes: ['.:/var/www']\n")
    init(tmp_path, mode, clean_env(tmp_path))
    assert {n: r[0] for n, r in routes(tmp_path).items()} == {
        "php": "app", "node": "app", "npm": "app", "npx": "app"}
    assert ("  php:  # Dockerfile: FROM acme/base:local (built by service base)\n"
            in _text(tmp_path))


@pytest.mark.parametrize(("extra", "winner", "why"), [
    ({"svc-k": "    volumes: ['.:/app']\n"}, "svc-k", "it mounts the project"),
    ({"svc-k": "    volumes: ['.:/app']\n", "svc-j": "    volumes: ['./apps/j:/app']\n"},
     "svc-k", "it mounts the project's root folder"),
    ({"svc-k": "    ports: ['80:3000']\n"}, "svc-k", "it publishes ports"),
    ({"svc-k": "    command: [node, server.js]\n"}, "svc-k", "it runs that toolchain"),
    ({}, "svc-a", "nothing sets them apart: the first by name; change `container:` to pick "
                  "another"),
])
def test_a_tie_between_alike_services_is_broken_by_what_they_are_for(
        tmp_path: Path, mode: str, extra: dict[str, str], winner: str, why: str) -> None:
    (tmp_path / "apps" / "j").mkdir(parents=True)
    names = [f"svc-{c}" for c in "abcdefghijk"]  # eleven services of one image
    (tmp_path / "compose.yaml").write_text("services:\n" + "".join(
        f"  {n}:\n    image: node:22\n{extra.get(n, '')}" for n in names))
    result = init(tmp_path, mode, clean_env(tmp_path))
    assert routes(tmp_path)["npm"][0] == winner
    others = ", ".join(f"'{n}'" for n in names if n != winner)
    assert (f"'node', 'npm', 'npx', 'yarn' are also in services {others}; routed to "
            f"'{winner}': {why}") in result.proposal.notes


def test_the_workdir_is_never_an_output_folder(tmp_path: Path, mode: str) -> None:
    # From a subfolder holding the compose file: the project's own folders are ./dist (output)
    # and ./src; `..` is outside the project.
    (tmp_path / "docker" / "dist").mkdir(parents=True)
    (tmp_path / "docker" / "src").mkdir()
    (tmp_path / "docker" / "compose.yaml").write_text(
        "services:\n  web:\n    image: node:22\n"
        "    volumes: ['..:/repo', './dist:/srv/dist', './src:/srv/src']\n"
        "  out:\n    image: python:3.12\n    volumes: ['./dist:/srv/app/dist']\n")
    init(tmp_path / "docker", mode, clean_env(tmp_path))
    found = routes(tmp_path / "docker")
    assert found["node"][2:4] == ("/srv/src", (("/workspace/dist", "/srv/dist"),
                                               ("/workspace/src", "/srv/src")))
    # A service whose only project folder is an output gets none mapped: its code is in its
    # image, where the output folder says it is.
    assert found["python"][:5] == ("out", ("python",), "/srv/app", (), None)


def test_the_final_stage_decides_what_exists(tmp_path: Path, mode: str) -> None:
    # The SDK builds, the ASP.NET runtime runs: no dotnet route, though the image starts it.
    (tmp_path / "Api").mkdir()
    (tmp_path / "Api" / "Dockerfile").write_text(
        "FROM mcr.microsoft.com/dotnet/sdk:8.0 AS build\nRUN apt-get install -y nodejs\n"
        "RUN dotnet publish -o /app\n"
        "FROM mcr.microsoft.com/dotnet/aspnet:8.0 AS final\nWORKDIR /app\n"
        "COPY --from=build /app .\nENTRYPOINT [\"dotnet\", \"Api.dll\"]\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        + "".join(f"  {n}:\n    build: {{context: ., dockerfile: Api/Dockerfile}}\n"
                  for n in ("api", "worker"))
        + "  cache:\n    image: redis:7\n")
    init(tmp_path, mode, clean_env(tmp_path))
    assert set(routes(tmp_path)) == {"redis-cli"}
    # The services built alike read alike: one block for both.
    assert ("  # api, worker (FROM mcr.microsoft.com/dotnet/aspnet:8.0: an ASP.NET Core runtime "
            "image (no SDK)): no program init knows.") in _text(tmp_path)
    assert "#   TOOL: {container: worker" not in _text(tmp_path)


@pytest.mark.parametrize(("mount", "kept"), [("./api:/code", False), (".:/code", True)])
def test_build_tools_of_another_toolchain_belong_to_the_whole_project(
        tmp_path: Path, mode: str, mount: str, kept: bool) -> None:
    # A Python image that installs node and cargo (to build wheels): they are the service's
    # only when it holds the project's root folder.
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "Dockerfile").write_text(
        "FROM python:3.12-alpine\nRUN apk add --no-cache nodejs-current cargo g++ make\n"
        "RUN apk add --virtual .tmp rust && pip install x && apk del .tmp\n")
    (tmp_path / "compose.yaml").write_text(
        f"services:\n  api:\n    build: ./api\n    volumes: ['{mount}']\n")
    result = init(tmp_path, mode, clean_env(tmp_path))
    assert ({"node", "cargo"} <= set(routes(tmp_path))) is kept
    assert "rustc" not in routes(tmp_path)  # installed, then removed again
    left_out = ("'node', 'cargo' are left out of 'api': installed on an image of another "
                "toolchain, in a service that does not mount the project's root folder (build "
                "tools)")
    assert (left_out in result.proposal.notes) is not kept


def test_images_derived_from_known_ones_are_known(tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  php:\n    image: wodby/drupal-php:8.3-dev-4.60.0\n    volumes: ['.:/var/www/html']\n"
        "  db:\n    image: zulip/zulip-postgresql:14\n"
        "  dev:\n    image: ghcr.io/acme/runtime:elixir-v1.18-erlang-v27-nodejs-v22\n"
        "  exporter:\n    image: prometheuscommunity/postgres-exporter\n")
    init(tmp_path, mode, clean_env(tmp_path))
    assert {n: r[0] for n, r in routes(tmp_path).items()} == {
        "php": "php", "composer": "php", "drush": "php", "psql": "db", "pg_dump": "db",
        "node": "dev", "npm": "dev", "npx": "dev", "elixir": "dev", "mix": "dev", "iex": "dev"}


def test_routes_into_a_service_without_the_project_say_they_act_on_its_code(
        tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  cms:\n    image: wordpress:6\n    volumes: ['codebase:/var/www/html']\n"
        "volumes: {codebase: {}}\n")
    init(tmp_path, mode, clean_env(tmp_path))
    assert ("    workdir: /var/www/html  # cms mounts no project folder: commands work on the "
            "code inside its container, not on yours\n") in _text(tmp_path)
    assert routes(tmp_path)["php"][3:] == ((), None)


def test_a_root_service_that_installs_into_the_project_gets_a_comment_not_a_user(
        tmp_path: Path, mode: str) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: node:22\n    working_dir: /app\n"
        "    volumes: ['.:/app']\n    command: sh -c 'npm install && npm run dev'\n"
        "  ui:\n    image: node:22\n    working_dir: /ui\n    user: node\n"
        "    volumes: ['./ui:/ui']\n    command: sh -c 'npm install && npm run dev'\n")
    (tmp_path / "ui").mkdir()
    result = init(tmp_path, mode, clean_env(tmp_path))
    assert routes(tmp_path)["npm"][4] is None
    text = _text(tmp_path)
    assert ('    # user: "${PUID}:${PGID}"  # left out: web writes into the project as root (see '
            "the note below)\n") in text
    assert ("web runs as root and writes into the project as it starts (`npm install`: "
            "./node_modules): its commands run as root too; chown ./node_modules to you, then "
            "uncomment their `user:` lines") in result.proposal.notes
    strict = run_check(CheckOptions(files=[tmp_path / ".sidecar" / "bridge.yaml"], strict=True))
    assert strict.exit_code == 0, strict.report.findings


def test_init_counts_in_words_and_validate_takes_inits_compose_flags(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  db:\n    image: redis:7\n")
    (tmp_path / "tools.yaml").write_text("services:\n  py:\n    image: python:3.12\n"
                                         "    volumes: ['.:/w']\n")
    (tmp_path / "more.yaml").write_text("services:\n  mail:\n    image: axllent/mailpit\n")
    flags = ["--compose", str(tmp_path / "tools.yaml"), "--compose", str(tmp_path / "more.yaml")]
    done = runner.invoke(app, ["init", "--dir", str(tmp_path), "--no-probe", *flags])
    assert done.exit_code == 0, done.output
    assert "proposed 2 commands; 1 service without a known program" in done.output
    config = str(tmp_path / ".sidecar" / "bridge.yaml")
    clean = runner.invoke(app, ["validate", "--strict", *flags, config])
    assert (clean.exit_code, clean.output.splitlines()[-1]) == (0, "1 file(s) valid")
    # Without them, validate reads the project's own compose.yaml, where `py` is no service.
    other = runner.invoke(app, ["validate", "--strict", config])
    assert other.exit_code == 1 and "[unknown-container]" in other.output
    one = tmp_path / "one"
    one.mkdir()
    (one / "compose.yaml").write_text("services:\n  db:\n    image: redis:7\n")
    done = runner.invoke(app, ["init", "--dir", str(one), "--no-probe"])
    assert "proposed 1 command; 0 services without a known program" in done.output
