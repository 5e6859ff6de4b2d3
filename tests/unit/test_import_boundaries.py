"""The layout's promises, checked on the source and in a fresh interpreter.

docs/architecture.md: dependencies point one way (entry points compose; nothing under
``backend/`` imports ``bot/``), there is no import cycle anywhere in our packages, the
scheduled functions load no Slack UI code, and only ``infra/`` and ``tests/`` reach the local
stand-ins.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backend", "bot", "infra")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Our modules ``path`` imports anywhere (top level, functions, TYPE_CHECKING blocks): each
    import is resolved to the most specific module of ours it names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
                break
    return targets


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, name, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_package_init_only(component: list[str], graph: dict[str, set[str]]) -> bool:
    """A package whose ``__init__`` registers its own submodules, which import siblings by
    their full names, is not a cycle Python can trip on: allow exactly that shape."""
    parents = [m for m in component if any(other.startswith(m + ".") for other in component)]
    if len(parents) != 1:
        return False
    parent = parents[0]
    rest = [m for m in component if m != parent]
    return all(parent not in graph[m] for m in rest) and _cycles({m: graph[m] & set(rest) for m in rest}) == []


def test_the_graph_sees_imports_so_the_checks_below_can_fail():
    graph = _graph()
    assert "backend.domain.status" in graph["backend.domain.model"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_there_is_no_import_cycle_in_backend_bot_or_infra():
    graph = _graph()
    cycles = [c for c in _cycles(graph) if not _is_package_init_only(c, graph)]
    assert cycles == []


def test_nothing_under_backend_imports_the_slack_app():
    offenders = {name: sorted(t for t in targets if t.split(".")[0] == "bot")
                 for name, targets in _graph().items() if name.startswith("backend")}
    assert {name: t for name, t in offenders.items() if t} == {}


def test_only_infra_and_tests_import_the_local_stand_ins():
    offenders = {name: sorted(t for t in targets if t.startswith("infra.local"))
                 for name, targets in _graph().items() if not name.startswith("infra")}
    # One deliberate exception: `trainbot local` (the CLI package's own module) starts local mode.
    assert {name: t for name, t in offenders.items() if t and name != "backend.entrypoints.cli"} == {}


def test_the_domain_is_pure():
    forbidden = ("boto3", "botocore", "slack_sdk", "slack_bolt", "backend.adapters", "backend.services")
    for path in sorted((ROOT / "backend" / "domain").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for imported in names:
                assert not imported.startswith(forbidden), f"{path.relative_to(ROOT)} imports {imported}"


@pytest.mark.parametrize("handler", ["backend.entrypoints.launcher", "backend.entrypoints.monitor"])
def test_the_scheduled_functions_load_no_slack_ui_code_even_with_slack_wired(handler):
    """Import the handler and build its container (Slack notifier and SNS configured) in a
    fresh interpreter, as a cold start does; the bot, bolt and the chart stack stay unloaded."""
    script = (
        "import json, sys\n"
        f"import {handler} as h\n"
        "from backend.entrypoints import runtime\n"
        "runtime.container()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SLACK_", "TRAINBOT_", "JOBS_", "NOTIFY_"))
    }
    env.update(
        JOBS_TABLE_NAME="jobs", NOTIFY_TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:t",
        SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s", SLACK_API_URL="http://127.0.0.1:9/api/",
        AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "backend.adapters.slack.notifier" in loaded  # the check below looks at a wired container
    ui = [m for m in loaded if m == "bot" or m.startswith(("bot.", "slack_bolt", "matplotlib", "numpy"))]
    assert ui == []
    assert "botocore.session" in loaded and [m for m in loaded if m.split(".")[0] in ("boto3", "s3transfer")] == []


def test_no_lambda_code_imports_boto3():
    """The clients are botocore's (backend.adapters.aws): importing boto3 would cost every cold
    start its session, s3transfer and multiprocessing (about 20 ms of CPU), Powertools
    Parameters too (it imports boto3)."""
    offenders = []
    for name, path in _modules().items():
        if name.split(".")[0] in ("backend", "bot"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{name}: {n}" for n in names if n.split(".")[0] == "boto3" or n.startswith("aws_lambda_powertools.utilities.parameters")]
    assert offenders == []


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_chart_module_imports_the_chart_library_and_only_the_chart_functions_code_and_the_cli_import_it():
    """matplotlib/numpy are in the chart function's artifact only (template.yaml ChartFunction):
    one module draws with them, and the bot's code never reaches it."""
    drawing = sorted(name for name, path in _modules().items() if _third_party_imports(path) & {"matplotlib", "numpy", "PIL"})
    assert drawing == ["backend.services.chart"]
    importers = sorted(name for name, targets in _graph().items() if "backend.services.chart" in targets)
    assert importers == ["backend.entrypoints.cli.stats", "backend.services.stats_chart"]
    assert not [name for name, targets in _graph().items() if name.split(".")[0] == "bot" and targets & {"backend.services.chart", "backend.services.stats_chart"}]


def test_the_chart_functions_cold_start_loads_the_chart_library_only_when_it_draws():
    """Import the chart handler and build its container in a fresh interpreter: matplotlib is
    imported by a request's drawing, not by the import (so an unparseable event costs nothing)."""
    script = (
        "import json, sys\n"
        "import backend.entrypoints.chart as h\n"
        "from backend.entrypoints import runtime\n"
        "runtime.container().charts\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SLACK_", "TRAINBOT_", "JOBS_", "NOTIFY_"))}
    env.update(JOBS_TABLE_NAME="jobs", SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "backend.services.stats_chart" in loaded
    assert [m for m in loaded if m.startswith(("matplotlib", "numpy", "bot.", "slack_bolt")) or m == "bot"] == []
