"""The pre-commit hook and the GitHub Action: their definitions load and their commands run."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def load(path: Path) -> object:
    return YAML(typ="safe").load(path.read_text())


def test_pre_commit_hook_runs(sidecar_cli: list[str], tmp_path: Path) -> None:
    [hook] = load(REPO / ".pre-commit-hooks.yaml")  # type: ignore[misc]
    assert hook["id"] == "sidecar-validate"
    assert hook["language"] == "python"
    pattern = re.compile(hook["files"])
    assert pattern.search(".sidecar/bridge.yaml")
    assert pattern.search("apps/shop/.sidecar/bridge.yml")
    assert not pattern.search("bridge.yaml.bak")
    entry = shlex.split(hook["entry"])
    assert entry[0] == "sidecar"
    bin_dir = str(Path(sidecar_cli[0]).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    good = subprocess.run([*entry, str(FIXTURES / "valid" / "extensions.yaml")], env=env)
    assert good.returncode == 0
    bad = subprocess.run([*entry, str(FIXTURES / "invalid" / "duplicates.yaml")], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "duplicate-key" in bad.stdout


def test_action_definition_is_valid_and_its_validate_step_runs(sidecar_cli: list[str]) -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is a dev dependency"
    schema_check = subprocess.run([checker, "--builtin-schema", "vendor.github-actions",
                                   str(REPO / "action.yml")], capture_output=True, text=True)
    assert schema_check.returncode == 0, schema_check.stdout + schema_check.stderr
    action = load(REPO / "action.yml")
    assert isinstance(action, dict)
    assert action["runs"]["using"] == "composite"
    validate_step = action["runs"]["steps"][-1]
    bash = shutil.which("bash")
    assert bash
    bin_dir = str(Path(sidecar_cli[0]).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "SIDECAR_FILES": f"{FIXTURES / 'invalid' / 'duplicates.yaml'}",
           "SIDECAR_STRICT": "false"}
    result = subprocess.run([bash, "-euo", "pipefail", "-c", validate_step["run"]], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.startswith("::error file=")
    env["SIDECAR_FILES"] = str(FIXTURES / "valid" / "original-minimal.yaml")
    env["SIDECAR_STRICT"] = "true"
    result = subprocess.run([bash, "-euo", "pipefail", "-c", validate_step["run"]], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_tree(tmp_path: Path) -> None:
    """Build the wheel, install it (not editable) into a fresh venv, run schema and init."""
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-w", str(dist), str(REPO)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = dist.glob("claude_sidecar-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "sidecar_gen/_data/schemas/bridge.schema.json" in names
    assert "sidecar_gen/_data/templates/bridge.yaml.j2" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Dependencies come from this environment (no registry needed); the package itself only
    # from the wheel: a .pth in a site dir does not process the editable install's own .pth.
    import sysconfig

    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(py), "-c", purelib], capture_output=True, text=True,
                          check=True).stdout.strip()
    Path(site, "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps",
                              "--force-reinstall", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "project"
    work.mkdir()
    (work / "compose.yaml").write_text("services:\n  php:\n    image: php:8.3\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    located = subprocess.run([str(py), "-c", "import sidecar_gen; print(sidecar_gen.__file__)"],
                             capture_output=True, text=True, cwd=work, env=env, check=True)
    assert str(venv) in located.stdout, "the wheel's package must be the one imported"
    sidecar = str(venv / "bin" / "sidecar")
    schema = subprocess.run([sidecar, "schema"], capture_output=True, text=True, cwd=work,
                            env=env)
    assert schema.returncode == 0 and '"$id"' in schema.stdout
    init = subprocess.run([sidecar, "init"], capture_output=True, text=True, cwd=work, env=env)
    assert init.returncode == 0, init.stderr
    check = subprocess.run([sidecar, "validate"], capture_output=True, text=True, cwd=work,
                           env=env)
    assert check.returncode == 0, check.stdout
