"""The artifact build's toolchain: the template's runtime is found (or its absence said
plainly), the x86_64 twin differs from template.yaml only in its architecture, and the build
cache key changes with anything a build reads."""

from __future__ import annotations

import pytest

from infra.deploy import artifacts
from infra.deploy.artifacts import ToolchainMissing
from infra.template import TEMPLATE_PATH


def test_a_machine_without_python313_gets_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.delenv("TRAINBOT_PYTHON313", raising=False)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match=r"python3\.13 \(the template's runtime\) is not installed here.*pyenv install 3\.13"):
        artifacts.find_python()


def test_python313_is_found_where_pyenv_keeps_it_or_where_the_variable_points(monkeypatch, tmp_path):
    found = artifacts.find_python()
    assert found.name == "python3.13"
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("TRAINBOT_PYTHON313", str(found))
    assert artifacts.find_python() == found
    monkeypatch.setenv("TRAINBOT_PYTHON313", str(tmp_path / "python3.13"))  # pointing at nothing
    with pytest.raises(ToolchainMissing):
        artifacts.find_python()


def test_the_twin_differs_from_the_template_only_in_its_architecture():
    original = TEMPLATE_PATH.read_text(encoding="utf-8")
    twin = artifacts.twin_template("x86_64")
    assert "Architectures: [arm64]" in original and "arm64" not in twin.replace("x86_64", "")
    assert twin.replace("[x86_64]", "[arm64]") == original


def test_the_build_cache_key_follows_the_architecture_and_the_sources(monkeypatch, tmp_path):
    assert artifacts.source_hash("arm64") != artifacts.source_hash("x86_64")
    assert artifacts.source_hash("arm64") == artifacts.source_hash("arm64")
    before = artifacts.source_hash("arm64")
    monkeypatch.setattr(artifacts, "sam_version", lambda: "aws-sam-cli==0.0.0")
    assert artifacts.source_hash("arm64") != before


def test_the_budgets_are_the_issues():
    assert artifacts.BUDGETS_MB == {"BotFunction": 60, "LauncherFunction": 50, "MonitorFunction": 50, "ChartFunction": 250}
    assert artifacts.DEFAULT_BUDGET_MB == 250


def test_the_check_names_an_artifact_over_budget_or_shipping_what_must_not_ship(tmp_path, monkeypatch):
    monkeypatch.setitem(artifacts.BUDGETS_MB, "LauncherFunction", 1)
    launcher = tmp_path / "LauncherFunction"
    (launcher / "backend").mkdir(parents=True)
    (launcher / "backend" / "big.bin").write_bytes(b"\0" * (2 * artifacts.MB))
    bot = tmp_path / "BotFunction"
    for folder in ("bot", "tests", "matplotlib", "backend/infra/local/standins"):
        (bot / folder).mkdir(parents=True)
    built = artifacts.Build("arm64", tmp_path, {"LauncherFunction": launcher, "BotFunction": bot})
    problems = artifacts.check(built)
    assert any("LauncherFunction (arm64) is 2.0 MB unzipped, over its 1 MB budget" in p for p in problems)
    assert "BotFunction (arm64) ships matplotlib/" in problems and "BotFunction (arm64) ships tests/" in problems
    assert "BotFunction (arm64) contains a standins/ folder" in problems



def test_only_the_chart_function_may_ship_the_chart_stack(tmp_path):
    functions = {}
    for name in ("ChartFunction", "MonitorFunction"):
        functions[name] = tmp_path / name
        for folder in ("backend", "matplotlib", "numpy", "PIL"):
            (functions[name] / folder).mkdir(parents=True)
    problems = artifacts.check(artifacts.Build("arm64", tmp_path, functions))
    assert sorted(problems) == [f"MonitorFunction (arm64) ships {lib}/" for lib in ("PIL", "matplotlib", "numpy")]
