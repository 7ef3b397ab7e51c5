"""Build the Claude image once for the whole test suite (and reuse it across runs).

The image is tagged `sidecar-test/claude:<inputs>`, where <inputs> starts the hash of everything
that goes into it (the build context the .dockerignore allowlist sends, and the build arguments),
and carries the whole hash as a label. A run whose inputs did not change reuses the image; any
change builds a new tag, so two checkouts testing different trees never swap images under
each other. A file lock keeps two
test processes from building at once. Import `ensure_claude_image` from other suites.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLAUDE_REPO = "sidecar-test/claude"
BASE_IMAGE = "sidecar-test/debian:bookworm"
INPUTS_LABEL = "dev.claude-sidecar.test-inputs"
# What the .dockerignore allowlist sends (keep the two in step).
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "sidecar_gen",
           "templates", "schemas")
LOCK = Path("/tmp/sidecar-test-claude-image.lock")


def build_args() -> dict[str, str]:
    """Offline build from the local base, plus the host's extra CAs (a TLS-inspecting proxy
    between this machine and PyPI would otherwise break `pip install` in the build)."""
    args = {"BASE_IMAGE": BASE_IMAGE, "CLAUDE_INSTALL": "none"}
    extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if extra:
        args["EXTRA_CA_CERTS"] = "".join(p.read_text() for p in extra).strip()
    return args


def inputs_hash(args: dict[str, str]) -> str:
    """sha256 over the build context's files (names and contents) and the build arguments."""
    digest = hashlib.sha256()
    for key in sorted(args):
        digest.update(f"arg {key}={args[key]}\0".encode())
    files: list[Path] = []
    for name in CONTEXT:
        path = REPO / name
        if path.is_dir():
            files += [p for p in path.rglob("*")
                      if (p.is_file() or p.is_symlink()) and "__pycache__" not in p.parts
                      and p.suffix != ".pyc"]
        elif path.exists():
            files.append(path)
    for path in sorted(files):
        rel = path.relative_to(REPO).as_posix()
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest.update(f"file {rel} {len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _label(image: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format",
         f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}', image],
        capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_claude_image() -> str:
    """Return the tag of the test image for this tree, building it first when it is missing."""
    args = build_args()
    wanted = inputs_hash(args)
    tag = f"{CLAUDE_REPO}:{wanted[:16]}"
    LOCK.touch(exist_ok=True)
    with LOCK.open("r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _label(tag) == wanted:
            return tag
        # --force-rm: a failed build leaves no stopped container behind.
        argv = ["docker", "build", "--quiet", "--force-rm", "--tag", tag,
                "--label", f"{INPUTS_LABEL}={wanted}"]
        for key, value in args.items():
            argv += ["--build-arg", f"{key}={value}"]
        # The classic builder: works on every engine, and BuildKit is not needed by the file.
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        result = subprocess.run([*argv, str(REPO)], capture_output=True, text=True, env=env,
                                timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"building {tag} failed:\n{result.stdout[-3000:]}\n"
                               f"{result.stderr[-3000:]}")
    return tag
