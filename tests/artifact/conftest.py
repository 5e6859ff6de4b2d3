"""The artifact test's expensive pieces: `sam build` once per session (cached by source hash,
one builder at a time across xdist workers), and per module the stand-ins and the built
functions wired to them as CloudFormation and Lambda would wire them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.deploy import artifacts
from infra.deploy.artifacts import Build, ToolchainMissing
from tests.artifact.stack import ArtifactStack, artifact_stack

SIZES_FILE = artifacts.CACHE / "sizes.txt"


@pytest.fixture(scope="session")
def builds() -> dict[str, Build]:
    """{"deployed": the template's own architecture, "runnable": this machine's twin}."""
    try:
        artifacts.find_python()
        artifacts.sam_executable()
        artifacts.runtime_boto3()
        deployed = artifacts.build(artifacts.template_architecture())
        machine = artifacts.machine_architecture()
        runnable = deployed if machine == deployed.architecture else artifacts.build(machine)
    except ToolchainMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    table = artifacts.size_table(*([deployed] if runnable is deployed else [deployed, runnable]))
    SIZES_FILE.write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    return {"deployed": deployed, "runnable": runnable}


@pytest.fixture(scope="module")
def stack(builds, tmp_path_factory) -> Iterator[ArtifactStack]:
    with artifact_stack(builds["runnable"], tmp_path_factory.mktemp("lambda-logs")) as wired:
        yield wired
