"""A stand-in for GitHub's git over HTTPS: the real `git http-backend` behind the scripted TLS
server, asking for the token as GitHub does (401 without it), recording every request."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from broker.standin import Recorded, Reply

GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real git with no user or system configuration."""
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd or "/nonexistent"),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test",
            "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", *args], cwd=cwd, env={**base, **(env or {})},
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stderr}")
    return result


def make_repo(root: Path, name: str, work: Path) -> Path:
    """A bare repository `root/name.git` with one commit on main (file README)."""
    bare = root / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--bare", "--initial-branch=main", str(bare))
    src = work / name.replace("/", "-")
    git("init", "--initial-branch=main", str(src))
    (src / "README").write_text(f"{name}\n")
    git("add", "README", cwd=src)
    git("commit", "-m", "first", cwd=src)
    git("push", str(bare), "main", cwd=src)
    return bare


def head_of(bare: Path) -> str:
    """The commit `main` points to in a bare repository."""
    return git("--git-dir", str(bare), "rev-parse", "main").stdout.strip()


class GitBackend:
    """The script for a StandIn: git http-backend over `root`, for a client holding `token`."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()

    def __call__(self, record: Recorded) -> Reply:
        if record.header("authorization") != self.expected:
            return Reply(401, [("WWW-Authenticate", 'Basic realm="GitHub"'),
                               ("Content-Type", "text/plain")], [b"no token\n"],
                         framing="length")
        path, _, query = record.target.partition("?")
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": record.method,
               "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_USER": "x-access-token",
               "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(record.body)),
               "CONTENT_TYPE": record.header("content-type") or "",
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root)}
        if record.header("content-encoding"):
            env["HTTP_CONTENT_ENCODING"] = record.header("content-encoding") or ""
        if record.header("git-protocol"):
            env["GIT_PROTOCOL"] = record.header("git-protocol") or ""
        out = subprocess.run([GIT_HTTP_BACKEND], input=record.body, env=env,
                             capture_output=True, timeout=120).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        if not _ and b"\n\n" in out:
            head, _, body = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name.strip(), value.strip()))
        return Reply(status, headers, [body], framing="length")
