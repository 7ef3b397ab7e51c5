"""Git over HTTPS without the token in the sandbox: the real git client on both ends (git
through `url.<broker>.insteadOf`, and `git http-backend` behind a TLS stand-in that wants the
token as GitHub does), the broker between them holding the token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from broker.conftest import API_KEY, GITHUB, RunningBroker
from broker.gitserver import GitBackend, git, head_of, make_repo
from broker.standin import StandIn


@pytest.fixture
def repos(tmp_path: Path, standin: StandIn) -> Path:
    root = tmp_path / "github"
    for name in ("octo/app", "octo/lib", "octo/secret"):
        make_repo(root, name, tmp_path / "seed")
    standin.script(GitBackend(root, GITHUB))
    return root


@pytest.fixture
def git_broker(broker_factory: Callable[..., RunningBroker], standin: StandIn,
               repos: Path) -> RunningBroker:
    return broker_factory(secrets={"api_key": API_KEY, "github_token": GITHUB},
                          github_upstream=standin.url("localhost"),
                          repositories=("octo/app", "Octo/Lib:push"))


class Sandbox:
    """The agent's side: git with only the insteadOf rule (as the claude container's
    root-owned system gitconfig will have it), no credential of any kind."""

    def __init__(self, home: Path, broker: RunningBroker) -> None:
        self.home = home
        home.mkdir(exist_ok=True)
        self.asked = home / "askpass-was-run"
        askpass = home / "askpass"
        askpass.write_text(f"#!/bin/sh\necho asked >> {self.asked}\necho guess\n")
        askpass.chmod(0o755)
        self.env = {"GIT_ASKPASS": str(askpass), "GIT_TERMINAL_PROMPT": "1"}
        self.rule = f"url.{broker.url}/git/github.com/.insteadOf=https://github.com/"

    def git(self, *args: str, cwd: Path | None = None,
            check: bool = True) -> tuple[int, str]:
        result = git("-c", self.rule, "-c", "credential.helper=", *args, cwd=cwd or self.home,
                     env=self.env, check=check)
        return result.returncode, result.stderr


def _sandbox(tmp_path: Path, broker: RunningBroker) -> Sandbox:
    return Sandbox(tmp_path / "agent", broker)


def test_clone_fetch_and_push_where_listed(tmp_path: Path, git_broker: RunningBroker,
                                           standin: StandIn, repos: Path) -> None:
    agent = _sandbox(tmp_path, git_broker)
    agent.git("clone", "https://github.com/octo/app.git", "app")
    assert (agent.home / "app" / "README").read_text() == "octo/app\n"
    agent.git("clone", "https://github.com/octo/lib", "lib")  # without .git too
    lib = agent.home / "lib"
    (lib / "NEW").write_text("pushed through the broker\n")
    agent.git("add", "NEW", cwd=lib)
    agent.git("commit", "-m", "second", cwd=lib)
    agent.git("push", "origin", "main", cwd=lib)
    assert head_of(repos / "octo" / "lib.git") == git("rev-parse", "HEAD", cwd=lib).stdout.strip()
    agent.git("fetch", cwd=agent.home / "app")
    # The token was the broker's: the client had none, and the upstream got it every time.
    expected = GitBackend(repos, GITHUB).expected
    assert standin.requests and all(r.header("authorization") == expected
                                    for r in standin.requests)
    assert any(r.target.endswith("/git-receive-pack") for r in standin.requests)
    assert not agent.asked.exists()
    assert GITHUB not in (agent.home / "app" / ".git" / "config").read_text()
    lines = git_broker.log_lines(len(standin.requests))
    assert {line["repository"] for line in lines} == {"octo/app", "octo/lib"}
    assert all(line["service"] == "github" and line["decision"] == "allow" for line in lines)


def test_push_to_a_read_only_repository_is_refused(tmp_path: Path, git_broker: RunningBroker,
                                                   standin: StandIn, repos: Path) -> None:
    agent = _sandbox(tmp_path, git_broker)
    agent.git("clone", "https://github.com/octo/app.git", "app")
    app = agent.home / "app"
    before = head_of(repos / "octo" / "app.git")
    (app / "EVIL").write_text("x\n")
    agent.git("add", "EVIL", cwd=app)
    agent.git("commit", "-m", "evil", cwd=app)
    code, err = agent.git("push", "origin", "main", cwd=app, check=False)
    assert code != 0
    assert "sidecar broker: github.com/octo/app is listed read-only: pushing is refused" in err
    assert head_of(repos / "octo" / "app.git") == before
    assert not any("receive-pack" in r.target for r in standin.requests)
    assert not agent.asked.exists()


def test_an_unlisted_repository_is_refused(tmp_path: Path, git_broker: RunningBroker,
                                           standin: StandIn) -> None:
    agent = _sandbox(tmp_path, git_broker)
    code, err = agent.git("clone", "https://github.com/octo/secret.git", "s", check=False)
    assert code != 0
    assert "github.com/octo/secret is not a repository the broker holds a token for" in err
    assert standin.requests == []
    assert not (agent.home / "s").exists()
    assert not agent.asked.exists()


def test_a_token_github_refuses_asks_the_user_nothing(
        tmp_path: Path, broker_factory: Callable[..., RunningBroker], standin: StandIn,
        repos: Path) -> None:
    # The host's token is wrong: GitHub answers 401. Passed on, git would ask for a password
    # (its askpass, or the terminal the user is watching): the broker answers 403 instead.
    broker = broker_factory(secrets={"github_token": "ghp_wrongToken0000000000000000000000"},
                            github_upstream=standin.url("localhost"),
                            repositories=("octo/app",))
    agent = _sandbox(tmp_path, broker)
    code, err = agent.git("clone", "https://github.com/octo/app.git", "app", check=False)
    assert code != 0
    assert "GitHub refused the token configured on the host" in err
    assert not agent.asked.exists()
    assert len(standin.requests) == 1


def test_git_refusals_are_text_lines(git_broker: RunningBroker) -> None:
    from broker.client import request

    answer = request(git_broker.port, "GET",
                     "/git/github.com/octo/secret/info/refs?service=git-upload-pack")
    assert answer.status == 403
    assert answer.header("content-type") == "text/plain; charset=utf-8"
    assert answer.body.decode().count("\n") == 1
