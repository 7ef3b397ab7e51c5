"""What a service is for: one-shot steps, writers into the project as root, output folders, and
the toolchain a start command runs."""

from __future__ import annotations

import pytest

from sidecar_gen.compose.project import Service
from sidecar_gen.scaffold.roles import (
    is_output_folder,
    one_shot,
    started_toolchains,
    started_with,
    writes_as_root,
)


def service(name: str = "app", *, restart: str | None = None,
            launch: tuple[tuple[str, ...], ...] = (), user: str | None = None,
            volumes: tuple[str, ...] = (), working_dir: str | None = None) -> Service:
    return Service(name, "example/app:1", restart=restart, launch=launch, user=user,
                   volumes=volumes, working_dir=working_dir)


@pytest.mark.parametrize(("svc", "awaited", "why"), [
    # Others wait for it to complete: whatever it is called or runs.
    (service("schema", restart="unless-stopped"), {"schema"}, "others wait for it to complete"),
    (service("migrator", restart="no"), set(), "its name says it is a step"),
    (service("kratos-migrate", restart="on-failure",
             launch=(("-c", "/etc/k.yml", "migrate", "sql", "-e", "--yes"),)), set(),
     "its name says it is a step"),
    # Installs, then a utility that ends the script: a step.
    (service("bundler", restart="no",
             launch=(("sh", "-lc", "bundle install --jobs 4; sha256sum Gemfile.lock > /b/sha"),)),
     set(), "its command runs `bundle install` and ends"),
    # An entrypoint that is a shell and a command that is its script, read as one argv.
    (service("ollama-pull", launch=(("/bin/sh",), ("-c", "sleep 3; ollama pull llama3.2"))),
     set(), "its name says it is a step"),
    (service("fetch", launch=(("/bin/sh",), ("-c", "sleep 3; ollama pull llama3.2"))),
     set(), "its command runs `ollama pull` and ends"),
    (service("web", launch=(("python", "manage.py", "migrate"),)), set(),
     "its command runs `python manage.py migrate` and ends"),
])
def test_steps_that_run_once(svc: Service, awaited: set[str], why: str) -> None:
    assert one_shot(svc, awaited) == why


@pytest.mark.parametrize("svc", [
    # Compose keeps it running whatever its name says.
    service("migrate", restart="always"),
    # Migrates, then serves: the last command is the server.
    service("web", launch=(("sh", "-c", "bundle exec rails db:prepare && yarn install && "
                                        "exec bundle exec rails s -b 0.0.0.0"),)),
    service("assets", launch=(("npm", "run", "build", "--", "--watch"),)),
    service("app", launch=(("sleep", "infinity"),)),
    service("app"),
])
def test_services_that_keep_running(svc: Service) -> None:
    assert one_shot(svc, set()) is None


def test_entrypoint_and_command_are_one_argv() -> None:
    svc = service(launch=(("tini", "--"), ("node", "server.js")))
    assert started_with(svc) == ("tini", "--", "node", "server.js")
    assert started_toolchains([started_with(svc)]) == {"node"}


@pytest.mark.parametrize(("argv", "toolchains"), [
    (("bundle", "exec", "puma", "-C", "config/puma.rb"), {"ruby"}),
    (("gunicorn", "app:app"), {"python"}),
    (("sh", "-c", "python manage.py runserver 0:8000"), {"python"}),
    (("php", "artisan", "queue:work"), {"php"}),
    (("pm2-runtime", "start", "dist/main.js"), {"node"}),
    (("./bin/docker-entrypoint.sh",), set()),
])
def test_the_toolchain_a_start_command_runs(argv: tuple[str, ...], toolchains: set[str]) -> None:
    assert started_toolchains([argv]) == toolchains


@pytest.mark.parametrize(("svc", "image_user", "expected"), [
    (service(launch=(("sh", "-c", "npm install && npm run dev"),), working_dir="/app"), None,
     ("npm install", "/app/node_modules")),
    (service(launch=(("composer", "install"),)), "root", ("composer install", "/app/vendor")),
    # node_modules is a volume: the install never reaches the project.
    (service(launch=(("sh", "-c", "npm ci && npm start"),), volumes=("/app/node_modules",)),
     None, None),
    # It runs as someone else: what it writes is not root's.
    (service(launch=(("npm", "install"),), user="node"), None, None),
    (service(launch=(("npm", "install"),)), "node", None),
    # Nothing it starts writes into the project.
    (service(launch=(("node", "server.js"),)), None, None),
])
def test_writers_into_the_project_as_root(svc: Service, image_user: str | None,
                                          expected: tuple[str, str] | None) -> None:
    assert writes_as_root(svc, image_user, svc.working_dir or "/app", ["/app"]) == expected


@pytest.mark.parametrize(("path", "output"), [
    ("dist", True), ("apps/web/dist", True), ("target/data", True), ("public/system", True),
    ("src", False), ("apps/api", False), ("", False),
])
def test_output_folders(path: str, output: bool) -> None:
    assert is_output_folder(path) is output
