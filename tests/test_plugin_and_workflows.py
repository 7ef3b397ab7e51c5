"""The Claude Code plugin marketplace and the GitHub workflows, checked offline."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_LABEL, unique_name
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
SKILLS = sorted(REPO.glob("plugins/*/skills/*/SKILL.md"))
PLUGINS = sorted(p.parent.parent for p in REPO.glob("plugins/*/.claude-plugin/plugin.json"))


def test_marketplace_lists_the_plugin_with_required_keys() -> None:
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    assert market["name"] == "claude-sidecar"
    assert market["owner"]["name"]
    [plugin] = market["plugins"]
    assert plugin["name"] == "compose-sandbox"
    source = REPO / plugin["source"]
    assert source == PLUGINS[0]
    manifest = json.loads((source / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == plugin["name"]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", manifest["name"])
    assert manifest["version"] == plugin["version"]
    assert list(source.glob("skills/*/SKILL.md")), "the plugin ships no skill"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _png_pixels(data: bytes) -> bytes:
    chunks, i = b"", 8
    while i < len(data):
        (length,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        if kind == b"IDAT":
            chunks += data[i + 8:i + 8 + length]
        i += 12 + length
    return zlib.decompress(chunks)


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugin_icon(plugin: Path) -> None:
    # What Claude Code's plugin directory asks for: a square PNG, 512 to 2048 px, under 2 MB.
    data = (plugin / "assets" / "icon.png").read_bytes()
    width, height = _png_size(data)
    assert width == height
    assert 512 <= width <= 2048
    assert len(data) < 2 * 1024 * 1024


def test_icon_matches_its_recipe(tmp_path: Path) -> None:
    # scripts/plugin-icon draws the icon; the committed file holds the same pixels.
    out = tmp_path / "icon.png"
    subprocess.run([sys.executable, str(REPO / "scripts" / "plugin-icon"), str(out)],
                   check=True, capture_output=True)
    committed = (REPO / "plugins" / "compose-sandbox" / "assets" / "icon.png").read_bytes()
    assert _png_pixels(out.read_bytes()) == _png_pixels(committed)


def test_readme_installs_the_plugins() -> None:
    readme = (REPO / "README.md").read_text()
    for plugin in PLUGINS:
        assert (f"/plugin install {plugin.name} --marketplace claude-sidecar/claude-sidecar"
                in readme)


def _validate(docker_client: Any, image: str, path: str) -> dict[str, Any]:
    """`claude plugin validate --strict --json PATH` in the Claude Code image, as the non-root
    user, with the repository mounted read-only at /repo and no network."""
    argv = ["claude", "plugin", "validate", "--strict", "--json", path]
    if path != "/repo":
        argv[3:3] = ["--profile", "directory"]
    container = docker_client.containers.run(
        image, argv, name=unique_name("sidecar-plugin"), detach=True,
        labels={TEST_LABEL: "1"}, network_mode="none",
        environment={"SIDECAR_FIREWALL": "0"},
        volumes={str(REPO): {"bind": "/repo", "mode": "ro"}})
    try:
        code = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    report: dict[str, Any] = json.loads(out[out.index("{"):])
    report["exit_code"] = code
    report["stderr"] = err
    return report


@pytest.mark.parametrize("target", ["/repo", *(f"/repo/plugins/{p.name}" for p in PLUGINS)])
def test_claude_code_validates_the_marketplace_and_plugins(docker_client: Any,
                                                           claude_code_image: str,
                                                           target: str) -> None:
    # The real `claude plugin validate` of the registry's latest Claude Code, offline: a
    # Claude Code release that refuses our manifests fails here.
    report = _validate(docker_client, claude_code_image, target)
    assert report["exit_code"] == 0, json.dumps(report, indent=2)
    assert report["success"] is True
    assert report["manifest"]["errors"] == []
    assert report["manifest"]["warnings"] == []
    assert report.get("advice", []) == [], report["advice"]


@pytest.mark.parametrize("skill", SKILLS, ids=lambda p: p.parent.name)
def test_skill_front_matter(skill: Path) -> None:
    text = skill.read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "SKILL.md must start with YAML front matter"
    meta = YAML(typ="safe").load(match.group(1))
    assert meta["name"] == skill.parent.name
    assert len(meta["description"]) > 40


def _sidecar_commands(text: str) -> list[list[str]]:
    commands = []
    for snippet in re.findall(r"`(sidecar [^`]+)`", text):
        words = shlex.split(snippet)
        commands.append(words)
    return commands


FLOW = ["init", "validate", "render", "up"]


@pytest.mark.parametrize("skill", SKILLS, ids=lambda p: p.parent.name)
def test_every_sidecar_command_the_skill_names_exists(skill: Path,
                                                      sidecar_cli: list[str]) -> None:
    commands = _sidecar_commands(skill.read_text())
    assert len(commands) >= 5
    for words in commands:
        sub = [w for w in words[1:] if not w.startswith("-")][:1]
        flags = [w.split("=")[0] for w in words[1:] if w.startswith("--")]
        help_run = subprocess.run([*sidecar_cli, *sub, "--help"], capture_output=True,
                                  text=True)
        assert help_run.returncode == 0, (words, help_run.stderr)
        for flag in flags:
            if flag == "--help":
                continue
            assert flag in help_run.stdout, f"{' '.join(words)}: {flag} is not a flag of it"


@pytest.mark.parametrize("skill", SKILLS, ids=lambda p: p.parent.name)
def test_skill_walks_the_flow_in_order(skill: Path) -> None:
    # init -> validate -> render -> up, in that order; doctor to diagnose.
    subs = [words[1] for words in _sidecar_commands(skill.read_text()) if len(words) > 1]
    firsts = [subs.index(step) for step in FLOW]
    assert firsts == sorted(firsts), subs
    assert "doctor" in subs


def test_workflows_validate_against_the_github_schema() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker
    workflows = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 2
    result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows",
                             *workflows], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_release_holds_no_secret_but_the_runs_own_token() -> None:
    """Publishing is keyless: PyPI by trusted publishing (an OIDC token the job may mint),
    the image with the run's own GITHUB_TOKEN; no stored secret can leak from a release, and
    every job that publishes can say where to."""
    text = (REPO / ".github" / "workflows" / "release.yml").read_text()
    release = YAML(typ="safe").load(text)
    secrets = set(re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert secrets <= {"GITHUB_TOKEN"}, secrets
    for name, job in release["jobs"].items():
        steps = job["steps"]
        for step in steps:
            if str(step.get("uses", "")).startswith("pypa/gh-action-pypi-publish"):
                assert (job.get("permissions") or {}).get("id-token") == "write", name
                assert not {"password", "user"} & set(step.get("with") or {}), name
        pushes = [s for s in steps if (s.get("with") or {}).get("push") in (True, "true")]
        if pushes:
            assert (job.get("permissions") or {}).get("packages") == "write", name
