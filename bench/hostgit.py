"""What running git safely on the host costs: `hostgit.run` vs plain git, side by side.

`hostgit.run` lists the repository's configuration (and reads what it includes) before each
command, to disable every program it names. Measured in one process, alternating, on a
repository with a typical configuration (a remote, branches with upstreams, an include, an
LFS-style filter): `git status` and `git worktree add` + `worktree remove` (what a session's
creation and removal run), and `trust.gitfiles.git_files` (what `sidecar up` adds to its check)
against one plain `git status`.

    .venv/bin/python bench/hostgit.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)

from sidecar_gen.host import git as hostgit
from sidecar_gen.trust.gitfiles import git_files
from sidecar_gen.trust.record import ApprovalStore

CONFIG = """\
[remote "origin"]
\turl = https://example.invalid/shop.git
\tfetch = +refs/heads/*:refs/remotes/origin/*
[branch "main"]
\tremote = origin
\tmerge = refs/heads/main
[filter "lfs"]
\tclean = git-lfs clean -- %f
\tsmudge = git-lfs smudge -- %f
\tprocess = git-lfs filter-process
\trequired = true
[include]
\tpath = ../shared.gitconfig
"""


def plain(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(base: Path) -> Path:
    repo = base / "shop"
    (repo / "src").mkdir(parents=True)
    for index in range(200):
        (repo / "src" / f"f{index}.php").write_text(f"<?php echo {index};\n")
    plain(repo, "init", "-q", "-b", "main")
    plain(repo, "add", "-A")
    plain(repo, "-c", "user.name=b", "-c", "user.email=b@example.invalid", "commit", "-qm", "x")
    with (repo / ".git" / "config").open("a") as handle:
        handle.write(CONFIG)
    (base / "shared.gitconfig").write_text("[core]\n\tabbrev = 10\n")
    return repo


def alternate(runs: int, cases: dict[str, Callable[[], None]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for index in range(runs):
        order = list(cases) if index % 2 == 0 else list(reversed(cases))
        for name in order:
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=31)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-hostgit-"))
    try:
        repo = make_repo(base)
        place = hostgit.Place(repo)
        store = ApprovalStore(base / "state")
        wt = base / "wt"

        def plain_worktree() -> None:
            plain(repo, "worktree", "add", "-q", "--detach", str(wt))
            plain(repo, "worktree", "remove", "--force", str(wt))

        def safe_worktree() -> None:
            hostgit.run(place, "worktree", "add", "-q", "--detach", str(wt))
            hostgit.run(place, "worktree", "remove", "--force", str(wt))

        cases = {
            "plain git status": lambda: plain(repo, "status", "--porcelain"),
            "hostgit status": lambda: hostgit.run(place, "status", "--porcelain") and None,
            "plain worktree add+remove": plain_worktree,
            "hostgit worktree add+remove": safe_worktree,
            "git_files (up's git check)": lambda: git_files(repo, store) and None,
        }
        for case in cases.values():
            case()  # warm the page cache
        medians = alternate(args.runs, cases)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"runs: {args.runs} each, alternating; medians")
    for name, value in medians.items():
        print(f"{name:<30} {value * 1000:7.1f} ms")
    status = medians["hostgit status"] / medians["plain git status"]
    worktree = medians["hostgit worktree add+remove"] / medians["plain worktree add+remove"]
    files = medians["git_files (up's git check)"] / medians["plain git status"]
    print(f"ratio hostgit/plain, status: {status:.2f}x; worktree add+remove: {worktree:.2f}x; "
          f"git_files / plain status: {files:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
