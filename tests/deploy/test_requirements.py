"""What `sam build` installs per function comes from pyproject.toml and cannot drift from it:
the committed infra/deploy/functions/*/requirements.txt are exactly the ``lambda-*`` extras,
whose pins are the project's own; each function's CodeUri is a folder of source links only."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.deploy import requirements
from infra.deploy.requirements import FUNCTIONS_DIR, SOURCE_PACKAGES, RequirementsError, drift, function_requirements
from infra.template import TEMPLATE_PATH, load_template

ROOT = TEMPLATE_PATH.parent
CHART_STACK = {"matplotlib", "numpy", "pillow", "contourpy", "fonttools", "kiwisolver"}


def _pyproject_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pyproject.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_the_committed_requirements_are_exactly_the_extras_of_pyproject():
    assert drift() == [], "run: python -m infra.deploy.requirements"
    assert requirements.main(["--check"]) == 0


def test_a_pin_changed_in_pyproject_only_is_reported_as_drift(tmp_path):
    # Changed in [project].dependencies alone: the extras now disagree with it, refused outright.
    one = _pyproject_with(tmp_path, '"pydantic==2.13.4",\n    "PyYAML', '"pydantic==2.13.5",\n    "PyYAML')
    with pytest.raises(RequirementsError, match="differs from the project's pydantic==2.13.5"):
        function_requirements(one)
    # Changed everywhere in pyproject.toml but not regenerated: the committed files drift.
    everywhere = tmp_path / "everywhere.toml"
    everywhere.write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8").replace("pydantic==2.13.4", "pydantic==2.13.5"), encoding="utf-8")
    problems = drift(everywhere)
    assert any("differs from pyproject.toml's [lambda-scheduled]" in p for p in problems)
    assert any("differs from pyproject.toml's [lambda-bot]" in p for p in problems)


def test_an_unpinned_or_foreign_requirement_in_an_extra_is_refused(tmp_path):
    loose = _pyproject_with(tmp_path, 'lambda-scheduled = [\n    "slack-sdk==3.47.0",', 'lambda-scheduled = [\n    "slack-sdk>=3",')
    with pytest.raises(RequirementsError, match="not pinned exactly"):
        function_requirements(loose)
    foreign = _pyproject_with(tmp_path, 'lambda-scheduled = [\n    "slack-sdk==3.47.0",', 'lambda-scheduled = [\n    "requests==2.32.3",')
    with pytest.raises(RequirementsError, match="not one of the project's dependencies"):
        function_requirements(foreign)


def test_every_function_builds_from_a_source_only_folder_with_its_own_requirements():
    functions = {
        logical_id: resource["Properties"]
        for logical_id, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert "CodeUri" not in load_template()["Globals"]["Function"], "a global CodeUri would ship the whole repository"
    extras = {f.name: f for f in function_requirements()}
    for logical_id, properties in functions.items():
        code_uri = properties["CodeUri"]
        assert code_uri.startswith(requirements.CODE_URI_PREFIX), logical_id
        name = code_uri.removeprefix(requirements.CODE_URI_PREFIX)
        assert name in extras, f"{logical_id}: no [lambda-{name}] extra"
        folder = ROOT / code_uri
        entries = {p.name: p for p in folder.iterdir()}
        assert set(entries) - {"requirements.txt"} <= set(SOURCE_PACKAGES), f"{code_uri} holds more than source links: {sorted(entries)}"
        for package in set(entries) - {"requirements.txt"}:
            assert entries[package].is_symlink() and entries[package].resolve() == (ROOT / package).resolve()
        handler_package = properties["Handler"].split(".", 1)[0]
        assert handler_package in entries, f"{logical_id}: {handler_package}/ is not in {code_uri}"
    assert {p.name for p in FUNCTIONS_DIR.iterdir() if p.is_dir()} == set(extras)


def test_only_the_chart_function_carries_the_chart_library_and_none_carries_boto3():
    carried = {}
    for function in function_requirements():
        names = {pin.split("==")[0].lower() for pin in function.pins}
        carried[function.name] = names & CHART_STACK
        assert "boto3" not in names and "botocore" not in names, "the Lambda runtime provides boto3"
    assert carried == {"bot": set(), "scheduled": set(), "chart": {"matplotlib"}}
    chart = next(f for f in function_requirements() if f.name == "chart")
    assert "matplotlib==3.11.2" in chart.pins and not {"slack-bolt"} & {p.split("==")[0] for p in chart.pins}
