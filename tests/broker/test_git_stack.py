"""Issue 22 item 4 in a rendered stack started by `sidecar up`: as user claude, plain
`git clone https://github.com/OWNER/REPO` goes through the broker (the root-owned system
gitconfig the entrypoint writes from bridge.yaml's `sidecar.broker.github`), which adds the
GitHub token stored with `sidecar auth set --github-token` for the listed repositories only.
The upstream is `git http-backend` behind a TLS stand-in with a test CA, wanting the token as
GitHub does; it records what arrived.

One stack, one test (about 25 s with the image built; the image is the shared
`sidecar-test/claude:none-...`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import unique_name

from broker.conftest import API_KEY, GITHUB
from broker.gitserver import GitBackend, head_of, make_repo
from broker.standin import StandIn, TestCA

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PUID = 1234


def _files(root: Path, project: str, image: str, ca: Path, port: int) -> None:
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text("services: {}\n")
    (root / ".sidecar" / "bridge.yaml").write_text(f"""\
version: "1"
commands: {{}}
sidecar:
  project: {project}
  image: {image}
  firewall: {{enabled: false}}
  broker:
    upstream: https://upstream.test:{port}
    ca_certificates: {ca}
    github:
      upstream: https://upstream.test:{port}
      repositories:
        - name: octo/app
        - {{name: Octo/Lib, push: true}}
""")


def _run(argv: list[str], root: Path, env: dict[str, str], timeout: float = 300,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def test_git_over_https_through_the_broker_in_the_rendered_stack(
        docker_client: Any, claude_image: str, test_ca: TestCA, tmp_path: Path,
        sidecar_cli: list[str]) -> None:
    repos = tmp_path / "github"
    for name in ("octo/app", "octo/lib", "octo/secret"):
        make_repo(repos, name, tmp_path / "seed")
    upstream = StandIn(GitBackend(repos, GITHUB), ca=test_ca, host="0.0.0.0")
    project = unique_name("gitstack")
    root = tmp_path / project
    ca = tmp_path / "ca.pem"  # outside the project: the agent cannot touch it
    ca.write_bytes(test_ca.ca_cert.read_bytes())
    _files(root, project, claude_image, ca, upstream.port)
    for path in [root, *root.rglob("*")]:
        os.lchown(path, PUID, PUID)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "GITHUB_", "GH_"))}
    env.update({"PUID": str(PUID), "PGID": str(PUID), "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(tmp_path / "state"), "ANTHROPIC_API_KEY": API_KEY})
    try:
        stored = _run([*sidecar_cli, "auth", "set", "--github-token", "--from-file", "-"],
                      root, env, stdin=GITHUB + "\n")
        assert stored.returncode == 0, stored.stderr
        render = _run([*sidecar_cli, "render"], root, env)
        assert render.returncode == 0, render.stdout + render.stderr
        # The broker reaches the stand-in on this host (upstream.test is in its certificate).
        (root / "compose.override.yaml").write_text(
            "services:\n  sidecar-broker:\n    extra_hosts: ['upstream.test:host-gateway']\n")
        up = _run([*sidecar_cli, "up"], root, env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert GITHUB not in up.stdout + up.stderr
        assert "no GitHub token" not in up.stderr  # said only when none is stored
        label = f"com.docker.compose.project={project}"
        containers = {c.labels["com.docker.compose.service"]: c for c in
                      docker_client.containers.list(filters={"label": label})}
        claude = containers["claude"]

        def as_claude(*argv: str) -> tuple[int, str]:
            result = claude.exec_run(
                ["git", "-c", "user.name=agent", "-c", "user.email=agent@example.test", *argv],
                user="claude", workdir="/home/claude",
                environment={"HOME": "/home/claude", "GIT_TERMINAL_PROMPT": "0"})
            return result.exit_code, result.output.decode(errors="replace")

        # The rule is root's, readable by claude, not writable by it.
        mode = claude.exec_run(["stat", "-c", "%u %a", "/etc/gitconfig"]).output.decode()
        assert mode.split() == ["0", "644"], mode
        code, out = as_claude("config", "--system", "--unset-all",
                              "url.http://sidecar-broker:8080/git/github.com/.insteadOf")
        assert code != 0 and "Permission denied" in out, out

        # A listed repository: cloned with the plain GitHub URL; the upstream saw the token.
        code, out = as_claude("clone", "https://github.com/octo/app", "app")
        assert code == 0, out
        readme = claude.exec_run(["cat", "/home/claude/app/README"], user="claude")
        assert readme.output.decode() == "octo/app\n"
        expected = GitBackend(repos, GITHUB).expected
        assert upstream.requests
        assert all(r.header("authorization") == expected for r in upstream.requests)
        seen = len(upstream.requests)

        # A push to a read-only listed repository: refused by the broker, never forwarded.
        before = head_of(repos / "octo" / "app.git")
        assert as_claude("-C", "app", "commit", "--allow-empty", "-m", "evil")[0] == 0
        code, out = as_claude("-C", "app", "push", "origin", "HEAD:main")
        assert code != 0
        assert "github.com/octo/app is listed read-only: pushing is refused" in out, out
        assert head_of(repos / "octo" / "app.git") == before
        assert not any("receive-pack" in r.target for r in upstream.requests[seen:])

        # A push to one listed with push: true goes through (with the token).
        assert as_claude("clone", "https://github.com/octo/lib", "lib")[0] == 0
        assert as_claude("-C", "lib", "commit", "--allow-empty", "-m", "second")[0] == 0
        code, out = as_claude("-C", "lib", "push", "origin", "HEAD:main")
        assert code == 0, out
        pushed = claude.exec_run(["git", "-C", "/home/claude/lib", "rev-parse", "HEAD"],
                                 user="claude").output.decode().strip()
        assert head_of(repos / "octo" / "lib.git") == pushed
        seen = len(upstream.requests)

        # An unlisted repository: refused, and the stand-in saw nothing of it.
        code, out = as_claude("clone", "https://github.com/octo/secret", "secret")
        assert code != 0
        assert "github.com/octo/secret is not a repository the broker holds a token for" in out
        assert len(upstream.requests) == seen
        assert not any("secret" in r.target for r in upstream.requests)

        # The token is in no configuration or environment claude can read.
        claude.reload()
        assert GITHUB not in " ".join(claude.attrs["Config"]["Env"])
        found = claude.exec_run(
            ["sh", "-c", "cat /proc/self/environ; git config --list --show-origin; "
             "cat /home/claude/app/.git/config /home/claude/lib/.git/config"],
            user="claude", environment={"HOME": "/home/claude"})
        assert "sidecar-broker:8080/git/github.com/" in found.output.decode()
        assert GITHUB not in found.output.decode()
        # ... nor anywhere else claude reads (doctor's search: every process's environment,
        # its home, /tmp, /run), the GitHub token included in what it looks for.
        doctor = _run([*sidecar_cli, "doctor", "--format", "json"], root, env)
        checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["secret"]["status"] == "ok", checks["secret"]
        assert GITHUB not in doctor.stdout + doctor.stderr
    finally:
        _run(["docker", "compose", "-p", project, "down", "-v", "--remove-orphans", "-t", "1"],
             root, env, timeout=120)
        upstream.close()
