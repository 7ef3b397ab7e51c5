"""What `sidecar up` adds to the verified model: the repository's git files read-only."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sidecar_gen.compose.cli import ResolvedModel
from sidecar_gen.trust.startmodel import read_only_git, started_model

PROTECT = ["/p/.git/config", "/p/.git/hooks", "/p/.git/info"]


def bind(source: str, target: str, **extra: object) -> dict[str, object]:
    return {"type": "bind", "source": source, "target": target, **extra}


def ro(source: str, target: str) -> dict[str, object]:
    return bind(source, target, read_only=True, bind={"create_host_path": False})


def test_each_git_path_is_mounted_read_only_where_a_service_sees_it() -> None:
    doc = {"name": "x", "services": {
        "claude": {"image": "c", "volumes": [bind("/p", "/workspace")]},
        "app": {"image": "a", "volumes": [bind("/", "/host"), {"type": "volume",
                                                              "source": "data",
                                                              "target": "/data"}]},
        "db": {"image": "d", "volumes": [{"type": "volume", "source": "db", "target": "/v"}]},
        "plain": {"image": "p"},
    }}
    out = read_only_git(doc, PROTECT, {})
    assert out["services"]["claude"]["volumes"] == [
        bind("/p", "/workspace"), ro("/p/.git/config", "/workspace/.git/config"),
        ro("/p/.git/hooks", "/workspace/.git/hooks"), ro("/p/.git/info", "/workspace/.git/info")]
    assert out["services"]["app"]["volumes"][2:] == [
        ro("/p/.git/config", "/host/p/.git/config"), ro("/p/.git/hooks", "/host/p/.git/hooks"),
        ro("/p/.git/info", "/host/p/.git/info")]
    assert out["services"]["db"] == doc["services"]["db"]  # sees no .git
    assert out["services"]["plain"] == doc["services"]["plain"]
    assert doc["services"]["claude"]["volumes"] == [bind("/p", "/workspace")]  # not changed


def test_a_mount_inside_a_protected_path_becomes_read_only_and_ro_mounts_stay() -> None:
    doc = {"services": {
        "hooks": {"volumes": [bind("/p/.git/hooks", "/h"), bind("/p/.git/hooks/x", "/x")]},
        "readonly": {"volumes": [bind("/p", "/src", read_only=True)]},
        "taken": {"volumes": [bind("/p", "/src"), bind("/elsewhere", "/src/.git/config")]},
    }}
    out = read_only_git(doc, PROTECT, {})["services"]
    assert out["hooks"]["volumes"] == [bind("/p/.git/hooks", "/h", read_only=True),
                                       bind("/p/.git/hooks/x", "/x", read_only=True)]
    assert out["readonly"] == doc["services"]["readonly"]
    # A target the project already mounts something else at keeps that mount (compose
    # refuses two mounts on one target).
    assert [m["target"] for m in out["taken"]["volumes"]] == [
        "/src", "/src/.git/config", "/src/.git/hooks", "/src/.git/info"]


def test_a_bind_source_behind_a_link_is_matched_by_its_real_path() -> None:
    doc = {"services": {"app": {"volumes": [bind("/link/", "/app")]}}}
    out = read_only_git(doc, ["/p/.git/config"], {"/link/": "/p"})["services"]["app"]
    assert out["volumes"][1] == ro("/p/.git/config", "/app/.git/config")


def test_started_model_keeps_compose_escapes_and_skips_paths_that_are_gone(tmp_path: Path
                                                                         ) -> None:
    project = tmp_path / "p$x"
    (project / ".git" / "hooks").mkdir(parents=True)
    (project / ".git" / "config").write_text("[core]\n")
    escaped = str(project).replace("$", "$$")
    text = json.dumps({"name": "x", "services": {"app": {
        "image": "a", "command": ["echo", "$$HOME"], "volumes": [bind(escaped, "/app")]}}})
    resolved = ResolvedModel(text, json.loads(text))
    out = started_model(resolved, [project / ".git" / "config", project / ".git" / "hooks",
                                   project / ".git" / "gone"])
    mounts = out.doc["services"]["app"]["volumes"]
    assert [m["source"] for m in mounts] == [
        escaped, escaped + "/.git/config", escaped + "/.git/hooks"]
    assert out.doc["services"]["app"]["command"] == ["echo", "$$HOME"]
    assert json.loads(out.text) == out.doc
    assert started_model(resolved, []) is resolved
    os.rename(project, tmp_path / "moved")  # gone by the time of the start: nothing to add
    assert started_model(resolved, [project / ".git" / "config"]) is resolved
