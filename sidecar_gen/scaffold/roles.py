"""What a compose service is for, as far as routing commands to it goes.

- A **one-shot** service runs a step and exits (a migration, an installer, an import): others
  wait for it to complete (`condition: service_completed_successfully`), or, unless compose
  restarts it whatever happens, its name or the last command it starts is such a step. Its
  container is gone once the step is done: no command is routed there.
- A service **writes into the project as root** when its start command installs or builds into
  a mounted folder (`npm install`, `composer install`, `cargo build`) and nothing makes it run as
  another user: what it made there is root's, so a routed command with the user's ids could not
  change it.
- An **output folder** (`dist`, `target`, `node_modules`) is where a build writes: a place to
  map, never the directory commands start in.
- The **toolchains a service starts**: its start command runs a program of that language (an
  app server, a worker): the service that runs it, when several have it.

Pure: reads only `compose.project.Service` and what `dockerfile` read.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence

from sidecar_gen.compose.project import Service
from sidecar_gen.scaffold.programs import TOOLCHAIN_OF, launched, script_commands, shell_script

# Restart policies under which compose keeps a service running: it is meant to stay up.
_KEPT_RUNNING = frozenset({"always", "unless-stopped"})
# Words of a service name that name a step, not a server (`migrate`, `db-init`, `n8n-import`).
_STEP_NAME = frozenset({"migrate", "migrator", "migration", "migrations", "setup", "seed",
                        "seeder", "install", "installer", "import", "init", "bootstrap",
                        "provision", "createbuckets", "pull"})
# A command that is a step: (program, a word among its arguments).
_STEP_WORDS = frozenset({"install", "ci", "migrate", "upgrade", "import", "seed", "setup",
                         "db:migrate", "db:prepare", "db:setup", "db:create", "db:seed",
                         "ecto.migrate", "ecto.setup", "ecto.create", "deps.get", "build",
                         "compile", "restore", "collectstatic", "pull"})
# Commands that end a script without serving anything (`...; sha256sum x > y`).
_UTILITIES = frozenset({"echo", "printf", "touch", "sha256sum", "md5sum", "cp", "mv", "rm",
                        "mkdir", "chmod", "chown", "ln", "true", "exit", "cat", "tee"})
_WATCH = frozenset({"--watch", "-w", "watch", "dev", "serve", "server", "start", "run"})
# What a start command writes into the folder it runs in: (program, first argument) -> folder.
_WRITES = {
    ("npm", "install"): "node_modules", ("npm", "i"): "node_modules", ("npm", "ci"): "node_modules",
    ("yarn", "install"): "node_modules", ("yarn", ""): "node_modules",
    ("pnpm", "install"): "node_modules", ("pnpm", "i"): "node_modules",
    ("bun", "install"): "node_modules", ("composer", "install"): "vendor",
    ("composer", "update"): "vendor", ("composer", "require"): "vendor",
    ("bundle", "install"): "vendor/bundle", ("mix", "deps.get"): "deps",
    ("mix", "compile"): "_build", ("cargo", "build"): "target", ("mvn", "package"): "target",
    ("mvn", "install"): "target", ("gradle", "build"): "build", ("dotnet", "build"): "bin",
    ("dotnet", "restore"): "obj", ("go", "build"): ".",
}
OUTPUT_FOLDERS = frozenset({"dist", "build", "out", "target", "node_modules", "vendor",
                            "coverage", ".next", ".nuxt", "_build", "deps", "bin", "obj",
                            "tmp", "log", "logs", "data", ".cache", "public"})
# App servers and workers: the toolchain a start command runs when it names no catalogue
# program itself (`gunicorn app:app` runs Python, `puma` Ruby).
_RUNS = {"gunicorn": "python", "uvicorn": "python", "celery": "python", "daphne": "python",
         "hypercorn": "python", "flask": "python", "django-admin": "python",
         "php-fpm": "php", "artisan": "php", "puma": "ruby", "sidekiq": "ruby",
         "unicorn": "ruby", "rackup": "ruby", "nodemon": "node", "next": "node", "vite": "node",
         "ts-node": "node", "tsx": "node", "nest": "node", "pm2": "node",
         "pm2-runtime": "node"}


def started_with(service: Service) -> tuple[str, ...]:
    """What compose starts the container with: its `entrypoint` then its `command` (either may
    be the image's, when compose leaves it out)."""
    return tuple(word for argv in service.launch for word in argv)


def _commands(argv: Sequence[str]) -> list[list[str]]:
    """The simple commands a start command runs: a `sh -c` script's, else itself."""
    words = list(argv)
    script = shell_script(words)
    if script is not None:
        return script_commands(script)
    return [words] if words else []


def _program(words: list[str]) -> tuple[str, list[str]]:
    """The program a simple command runs, and its arguments (wrappers like `exec`, `bundle
    exec`, `npx` and variable assignments skipped)."""
    while words and ("=" in words[0] or posixpath.basename(words[0]) in (
            "exec", "env", "tini", "dumb-init", "gosu", "su-exec", "nice", "time", "--")):
        words = words[1:]
    if len(words) >= 2 and posixpath.basename(words[0]) in ("bundle", "npx", "pnpm", "yarn") \
            and words[1] in ("exec", "dlx"):
        words = words[2:]
    if not words:
        return "", []
    return posixpath.basename(words[0]), words[1:]


def _shown(words: list[str]) -> str:
    """A command as a note quotes it: its program and first argument (`bundle install`)."""
    program, args = _program(words)
    plain = [a for a in args if not a.startswith("-")]
    # A script's own subcommand says what it does (`python manage.py migrate`).
    shown = plain[:2] if plain and ("." in plain[0] or "/" in plain[0]) else plain[:1]
    return " ".join([program, *shown])


def _is_step(program: str, args: list[str]) -> bool:
    lowered = {a.lower() for a in args}
    if lowered & _WATCH:
        return False
    if program in _UTILITIES:
        return True
    return bool(lowered & _STEP_WORDS) or any(w.startswith("migrate") for w in lowered)


def one_shot(service: Service, awaited: Iterable[str]) -> str | None:
    """Why `service` runs once and exits (None: it keeps running). `awaited`: the services
    others wait for to complete."""
    if service.name in awaited:
        return "others wait for it to complete"
    if (service.restart or "no").split(":")[0] in _KEPT_RUNNING:
        return None
    if _STEP_NAME & set(re.split(r"[-_.]", service.name.lower())):
        return "its name says it is a step"
    commands = _commands(started_with(service))
    if commands:
        last = _program(commands[-1])
        steps = [c for c in commands if _is_step(*_program(c)) and _program(c)[0]
                 not in _UTILITIES]
        if _is_step(*last) and steps:
            return f"its command runs `{_shown(steps[-1])}` and ends"
    return None


def writes_as_root(service: Service, image_user: str | None, workdir: str | None,
                   mounted: Iterable[str]) -> tuple[str, str] | None:
    """(the command, the container folder it writes) when `service` writes as root into a
    mounted folder as it starts (`npm install`: node_modules), else None. `image_user`: the
    Dockerfile's USER; `workdir`: where its commands run; `mounted`: the container folders of
    the project."""
    if service.user is not None or (image_user and image_user.split(":")[0] not in
                                    ("root", "0")):
        return None
    folders = tuple(mounted)
    if not folders or not workdir:
        return None
    for words in _commands(started_with(service)):
        program, args = _program(words)
        first = next((a for a in args if not a.startswith("-")), "")
        output = _WRITES.get((program, first))
        if output is None:
            continue
        target = posixpath.normpath(posixpath.join(workdir, output))
        if _under(target, folders) and not _under(target, service.volumes):
            return _shown(words), target
    return None


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def is_output_folder(path: str) -> bool:
    """A folder a build writes into (`dist`, `target/classes`...), by its name."""
    parts = [p for p in path.split("/") if p]
    return bool(parts) and any(p.lower() in OUTPUT_FOLDERS for p in parts)


def started_toolchains(launch: Iterable[Sequence[str]]) -> frozenset[str]:
    """The toolchains the start commands run (`rails s` and `puma`: ruby; `gunicorn`: python)."""
    found: set[str] = set()
    for argv in launch:
        found.update(TOOLCHAIN_OF[p] for p in launched(argv) if p in TOOLCHAIN_OF)
        for words in _commands(argv):
            program, args = _program(words)
            if program in _RUNS:
                found.add(_RUNS[program])
            elif program in ("php", "python") and args[:1] in (["artisan"], ["manage.py"]):
                found.add(program)
    return frozenset(found)
