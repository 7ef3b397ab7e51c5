"""Build the Claude test images once (and reuse them across runs while their inputs are unchanged).

Two variants, both from the repository's Dockerfile on the local Debian base:

- `none`: no Claude Code (offline); what most suites run;
- `npm`: Claude Code from the npm registry (`CLAUDE_INSTALL=npm`), pinned to the registry's
  current `latest` version, so a new Claude Code release builds a new image and is tested.

A variant is tagged `sidecar-test/claude:<variant>-<inputs>`, where <inputs> starts the hash of
everything that goes into it (the build context the .dockerignore allowlist sends, and the build
arguments), and carries the whole hash as a label. A run whose inputs did not change reuses the
image; any change builds a new tag, so two checkouts testing different trees never swap images
under each other. The Dockerfile keeps Claude Code's stage and the slow layers apart from the
source tree, so after a source change the engine's build cache rebuilds only the last layers.
A file lock keeps two test processes from building at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path

from images import CLAUDE_REPO, DEBIAN_IMAGE

REPO = Path(__file__).resolve().parents[2]
INPUTS_LABEL = "dev.claude-sidecar.test-inputs"
# The Claude Code version an `npm` image was built with (the registry's latest at the time).
VERSION_LABEL = "dev.claude-sidecar.test-claude-version"
# What the .dockerignore allowlist sends (keep the two in step).
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "sidecar_gen",
           "templates", "schemas")
LOCK = Path("/tmp/sidecar-test-claude-image.lock")
NPM_LATEST = "https://registry.npmjs.org/@anthropic-ai/claude-code/latest"


class NpmRegistryError(Exception):
    """The npm registry did not say which Claude Code version is the latest."""


def latest_claude_code_version() -> str:
    """The version the npm registry's `latest` tag of @anthropic-ai/claude-code points to."""
    request = urllib.request.Request(NPM_LATEST, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            version = json.load(response)["version"]
    except (OSError, ValueError, KeyError) as exc:
        raise NpmRegistryError(f"cannot ask the npm registry for Claude Code's latest "
                                  f"version ({NPM_LATEST}): {exc}") from exc
    return str(version)


def build_args(variant: str = "none") -> dict[str, str]:
    """Build arguments of a variant, plus the host's extra CAs (a TLS-inspecting proxy
    between this machine and PyPI or npm would otherwise break the downloads in the build)."""
    args = {"BASE_IMAGE": DEBIAN_IMAGE, "CLAUDE_INSTALL": variant}
    if variant == "npm":
        args["CLAUDE_VERSION"] = latest_claude_code_version()
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


def ensure_claude_image(variant: str = "none") -> str:
    """Return the tag of the `variant` test image for this tree, building it when missing."""
    args = build_args(variant)
    wanted = inputs_hash(args)
    tag = f"{CLAUDE_REPO}:{variant}-{wanted[:16]}"
    LOCK.touch(exist_ok=True)
    with LOCK.open("r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _label(tag) == wanted:
            return tag
        # --force-rm: a failed build leaves no stopped container behind.
        argv = ["docker", "build", "--quiet", "--force-rm", "--tag", tag,
                "--label", f"{INPUTS_LABEL}={wanted}"]
        if "CLAUDE_VERSION" in args:
            argv += ["--label", f"{VERSION_LABEL}={args['CLAUDE_VERSION']}"]
        for key, value in args.items():
            argv += ["--build-arg", f"{key}={value}"]
        # The classic builder: works on every engine, and BuildKit is not needed by the file.
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        result = subprocess.run([*argv, str(REPO)], capture_output=True, text=True, env=env,
                                timeout=1200)
        if result.returncode != 0:
            raise RuntimeError(f"building {tag} failed:\n{result.stdout[-3000:]}\n"
                               f"{result.stderr[-3000:]}")
    return tag
