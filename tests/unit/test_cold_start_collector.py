"""A cold start in Lambda runs with the cyclic garbage collector paused, until its first
invocation ends (backend.entrypoints.coldstart); outside Lambda nothing changes. Each case is a
fresh interpreter: a cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_FIRST_INVOCATION = """
import gc, json, sys
handler_module = __import__(sys.argv[1], fromlist=["handler"])
seen = {"paused_after_import": not gc.isenabled()}
from backend.entrypoints import runtime
from infra.local.standins.lambda_invoke import lambda_context
from tests.fixtures import samples


class Broken:
    def __getattr__(self, name):
        raise RuntimeError("the first invocation fails")


runtime.install(Broken())
if sys.argv[1].endswith(".chart"):  # a request the chart function takes: it reaches the container
    from backend.domain.charts import ChartRequest
    from backend.domain.model import Owner
    event = ChartRequest(key="k", scope="all", days=7, requester=Owner(team_id="T1", user_id="U1"), channel_id="C1").event()
elif "entrypoints" in sys.argv[1]:
    event = samples.scheduled_event()
else:
    event = samples.function_url_event("command=%2Ftrain", {})
try:
    seen["answer"] = handler_module.handler(event, lambda_context("trainbot-x"))
except RuntimeError as exc:
    seen["answer"] = str(exc)
seen["running_after_first_invocation"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count()
print(json.dumps(seen, default=str))
"""


def _first_invocation(module: str, *, in_lambda: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    env.update(JOBS_TABLE_NAME="jobs", AWS_REGION="us-east-1", POWERTOOLS_METRICS_DISABLED="true")
    if in_lambda:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "trainbot-x"
    done = subprocess.run([sys.executable, "-c", _FIRST_INVOCATION, module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["backend.entrypoints.launcher", "backend.entrypoints.monitor", "backend.entrypoints.chart", "bot.handler"])
def test_in_lambda_the_collector_is_paused_from_the_import_until_the_first_invocation_ends_even_in_failure(module):
    seen = _first_invocation(module, in_lambda=True)
    assert seen["paused_after_import"] is True
    assert seen["running_after_first_invocation"] is True and seen["frozen"] > 10_000, seen


def test_outside_lambda_the_collector_is_never_paused():
    seen = _first_invocation("backend.entrypoints.launcher", in_lambda=False)
    assert seen["paused_after_import"] is False
    assert seen["running_after_first_invocation"] is True and seen["frozen"] == 0, seen
