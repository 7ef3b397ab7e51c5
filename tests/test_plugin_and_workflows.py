"""The Claude Code plugin marketplace and the GitHub workflows, checked offline."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
SKILLS = sorted(REPO.glob("plugins/*/skills/*/SKILL.md"))


def test_marketplace_lists_the_plugin_with_required_keys() -> None:
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    assert market["name"] == "claude-sidecar"
    assert market["owner"]["name"]
    [plugin] = market["plugins"]
    assert plugin["name"] == "claude-sidecar"
    source = REPO / plugin["source"]
    manifest = json.loads((source / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == plugin["name"]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", manifest["name"])
    assert manifest["version"] == plugin["version"]
    assert list(source.glob("skills/*/SKILL.md")), "the plugin ships no skill"


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


def test_workflows_validate_against_the_github_schema() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker
    workflows = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 2
    result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows",
                             *workflows], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_release_workflow_uses_trusted_publishing_and_ghcr() -> None:
    release = YAML(typ="safe").load((REPO / ".github" / "workflows" / "release.yml").read_text())
    assert release["on"]["push"]["tags"] == ["v*"]
    jobs = release["jobs"]
    assert jobs["pypi"]["permissions"]["id-token"] == "write"
    uses = [s.get("uses", "") for job in jobs.values() for s in job["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish") for u in uses)
    assert any(u.startswith("docker/build-push-action") for u in uses)
    assert "ghcr.io" in json.dumps(jobs["image"])
