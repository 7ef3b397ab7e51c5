"""Validation: positive and negative fixture folders, parametrized from the directory listing.

Each negative fixture marks the findings it must produce with `# expect: RULE@COLUMN` on the
line where they must be reported; the test demands exactly those, no more, no fewer.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sidecar_gen.compose.project import ProjectNames
from sidecar_gen.validate.bridge import validate_file, validate_text
from sidecar_gen.validate.check import CheckOptions, run_check
from sidecar_gen.validate.findings import Severity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
VALID = sorted(p for p in (FIXTURES / "valid").glob("*.yaml") if p.name != "compose.yaml")
INVALID = sorted(p for p in (FIXTURES / "invalid").glob("*.yaml") if p.name != "compose.yaml")
EXAMPLES = sorted(REPO.glob("examples/*/.sidecar/bridge.yaml"))
EXPECT = re.compile(r"#\s*expect:\s*([a-z-]+)@(\d+)")


def expected_findings(path: Path) -> set[tuple[int, int, str]]:
    out = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for rule, column in EXPECT.findall(line):
            out.add((number, int(column), rule))
    return out


@pytest.mark.parametrize("path", VALID + EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_valid_files_have_no_findings(path: Path) -> None:
    result = run_check(CheckOptions(files=[path], strict=True))
    assert result.report.findings == []
    assert result.exit_code == 0


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_seeded_mistake_is_reported_at_its_position(path: Path) -> None:
    expected = expected_findings(path)
    assert expected, f"{path.name} seeds no mistakes"
    result = run_check(CheckOptions(files=[path]))
    got = {(f.line, f.column, f.rule) for f in result.report.findings}
    assert got == expected
    assert result.exit_code == 1


def test_warnings_pass_unless_strict(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  php:\n    container: app\n    exec: php\n'
                      "    paths:\n      /workspace/: /var/www/html\n")
    assert run_check(CheckOptions(files=[config])).exit_code == 0
    assert run_check(CheckOptions(files=[config], strict=True)).exit_code == 1


def test_all_files_are_reported_even_when_one_is_missing(tmp_path: Path) -> None:
    bad = FIXTURES / "invalid" / "duplicates.yaml"
    result = run_check(CheckOptions(files=[tmp_path / "missing.yaml", bad]))
    assert result.exit_code == 2
    assert result.unreadable == [f"{tmp_path / 'missing.yaml'}: no such file"]
    assert {f.rule for f in result.report.findings} == {"duplicate-key", "key-not-string"}


def test_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_bytes(b"version: \xff\xfe\n")
    result = run_check(CheckOptions(files=[config]))
    assert result.exit_code == 2
    assert "not UTF-8" in result.unreadable[0]


def test_container_names_are_checked_against_the_compose_project() -> None:
    names = ProjectNames(services=frozenset({"php", "db"}), containers=frozenset({"shop-db"}),
                         project="shop", name_source="name", source="compose.yaml")
    text = ('version: "1"\ndefault_container: shop-php-2\ncontainers:\n  data: shop-db\n'
            '  gone: other-php-1\ncommands:\n  php:\n    container: php\n    exec: php\n'
            '  psql:\n    container: data\n    exec: psql\n  bad:\n    container: phq\n'
            '    exec: x\n  old:\n    container: gone\n    exec: x\n')
    found = [(f.line, f.rule, f.message) for f in validate_text(text, "b.yaml", names)]
    assert found == [
        (5, "unknown-container-name", "compose never creates a container named 'other-php-1' "
         "in this project ('shop'); it looks like service 'php' in a project called otherwise: "
         "route by the service instead (container: php)"),
        (14, "unknown-container", "container 'phq' is not in containers or a service of "
         "compose.yaml, nor a container compose creates; did you mean 'php'?"),
    ]


def test_without_compose_file_a_reference_outside_containers_is_a_warning() -> None:
    text = ('version: "1"\ndefault_container: nowhere\ncontainers:\n  php: x-php-1\n'
            'commands:\n  php:\n    container: phpp\n    exec: php\n  ok:\n    container: php\n'
            '    exec: ok\n')
    found = validate_text(text, "b.yaml")
    assert [(f.line, f.rule, f.severity) for f in found] == [
        (2, "container-unchecked", Severity.WARNING), (7, "container-unchecked",
                                                       Severity.WARNING)]
    assert found[1].message.endswith("(pass --compose FILE); did you mean 'php'?")
    assert "did you mean" not in found[0].message


def test_names_from_the_folder_name_are_warned_about(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    (project / ".sidecar").mkdir(parents=True)
    (project / "compose.yaml").write_text("services:\n  php:\n    image: php\n")
    config = project / ".sidecar" / "bridge.yaml"
    config.write_text('version: "1"\ncontainers:\n  php: shop-php-1\ncommands:\n  php:\n'
                      '    container: php\n    exec: php\nsidecar:\n  project: shop\n')
    result = run_check(CheckOptions(files=[config]))
    assert [(f.line, f.rule) for f in result.report.findings] == [
        (3, "folder-dependent-name"), (9, "folder-dependent-name")]
    assert "in a folder called 'shop'" in result.report.findings[0].message
    assert result.exit_code == 0
    assert run_check(CheckOptions(files=[config], strict=True)).exit_code == 1
    # A teammate's checkout under another name: the same file is now wrong, and says so.
    other = tmp_path / "shop-copy"
    shutil.copytree(project, other)
    moved = run_check(CheckOptions(files=[other / ".sidecar" / "bridge.yaml"]))
    assert [f.rule for f in moved.report.findings] == ["unknown-container-name",
                                                       "project-mismatch"]
    assert moved.exit_code == 1
    # A project that names itself does not depend on the folder.
    (project / "compose.yaml").write_text("name: shop\nservices:\n  php:\n    image: php\n")
    assert run_check(CheckOptions(files=[config], strict=True)).exit_code == 0


def test_duplicate_key_names_the_line_of_the_first_definition() -> None:
    path = FIXTURES / "invalid" / "duplicates.yaml"
    found = [(f.line, f.message) for f in validate_file(path) if f.rule == "duplicate-key"]
    assert found == [(6, "duplicate key 'exec' (first defined on line 5)"),
                     (7, "duplicate key 'php' (first defined on line 3)")]


def test_a_key_defined_three_times_names_the_first_line_each_time() -> None:
    # Every later occurrence points at the first one, not at the one just before it.
    text = ('version: "1"\ncommands:\n  php:\n    container: app\n    exec: php\n'
            '    exec: php8\n    exec: php9\n')
    found = [(f.line, f.message) for f in validate_text(text, "b.yaml")
             if f.rule == "duplicate-key"]
    assert found == [(6, "duplicate key 'exec' (first defined on line 5)"),
                     (7, "duplicate key 'exec' (first defined on line 5)")]


def test_a_tab_gets_indent_with_spaces_wording() -> None:
    [finding] = validate_text('version: "1"\ncommands:\n\tphp: {container: a, exec: b}\n',
                              "b.yaml")
    assert (finding.rule, finding.line, finding.column) == ("yaml-syntax", 3, 1)
    assert finding.message == "a tab character: indent with spaces (YAML does not allow tabs here)"


def test_did_you_mean_hint() -> None:
    text = 'version: "1"\ncomands: {}\n'
    messages = [f.message for f in validate_text(text, "b.yaml")]
    assert "unknown key 'comands' in $; did you mean 'commands'?" in messages


@pytest.mark.parametrize("name", ["sh", "bash", "env", "sudo", "su", "claude", "python3",
                                  "sidecar", "sidecar-dispatch"])
def test_reserved_command_names_are_errors(name: str) -> None:
    text = (f'version: "1"\ncontainers: {{app: x}}\ncommands:\n  {name}:\n    container: app\n'
            '    exec: x\n')
    findings = validate_text(text, "b.yaml")
    assert [(f.rule, f.severity) for f in findings] == [("reserved-command", Severity.ERROR)]


def test_default_config_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIDECAR_CONFIG_DIR", raising=False)
    (tmp_path / ".sidecar").mkdir()
    (tmp_path / ".sidecar" / "bridge.yaml").write_text("version: 2\n")
    result = run_check(CheckOptions())
    assert result.report.files == [".sidecar/bridge.yaml"]
    assert result.exit_code == 1
    other = tmp_path / "conf"
    other.mkdir()
    (other / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  go:\n    container: api\n    exec: go\n')
    monkeypatch.setenv("SIDECAR_CONFIG_DIR", str(other))
    result = run_check(CheckOptions())
    assert result.report.files == [str(other / "bridge.yaml")]
    assert result.exit_code == 0


def test_validate_file_matches_validate_text() -> None:
    path = INVALID[0]
    assert validate_file(path) == validate_text(path.read_text(), str(path))
