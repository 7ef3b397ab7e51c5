"""Finding the files compose reads in a folder (for diffs that name them)."""

from __future__ import annotations

from pathlib import Path

from sidecar_gen.trust.inputs import compose_inputs, existing_compose_files


def names(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    return {str(i.path.relative_to(root)) if i.path.is_relative_to(root) else str(i.path): i.kind
            for i in compose_inputs(root, env or {})}


def test_default_names_are_listed_even_when_absent(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    found = names(tmp_path)
    assert list(found)[:2] == [".env", "compose.yaml"]
    assert {"compose.override.yaml", "docker-compose.override.yml"} <= set(found)
    assert found[".env"] == "env" and found["compose.yaml"] == "compose"
    assert existing_compose_files(tmp_path, {}) == [tmp_path / "compose.yaml"]


def test_compose_file_from_the_environment_or_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COMPOSE_FILE='a.yml;b.yml'\nCOMPOSE_PATH_SEPARATOR=;\n")
    found = names(tmp_path)
    assert {"a.yml", "b.yml"} <= set(found)
    found = names(tmp_path, {"COMPOSE_FILE": "c.yml"})
    assert "c.yml" in found and "a.yml" not in found


def test_references_are_followed_and_cycles_end(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "include:\n  - inc/one.yml\n  - path: [two.yml]\n    env_file: inc.env\n"
        "services:\n  a:\n    extends: {file: base.yml, service: b}\n"
        "    env_file:\n      - a.env\n      - path: ${DIR:-opt}/b.env\n        required: false\n")
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "one.yml").write_text("include: [../compose.yaml, deeper.yml]\n")
    found = names(tmp_path, {"DIR": "conf"})
    for name, kind in (("inc/one.yml", "compose"), ("two.yml", "compose"),
                       ("inc.env", "env"), ("base.yml", "compose"), ("a.env", "env"),
                       ("conf/b.env", "env"), ("inc/deeper.yml", "compose")):
        assert found.get(name) == kind, (name, found)


def test_unreadable_yaml_is_left_to_compose(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: [\n")
    assert "compose.yaml" in names(tmp_path)
