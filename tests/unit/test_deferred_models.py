"""The domain's pydantic models build their validators on first use (backend.domain.base), so a
cold start that validates none of them (the bot's /train help, an idle launcher tick) builds
none; and a model first used by several threads at once is built once, correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_BUILT = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
from backend.domain.base import DomainModel
def models(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from models(sub)
print(json.dumps(sorted({m.__name__: m.__pydantic_complete__ for m in models(DomainModel)}.items())))
"""


def _models_built_after_importing(*modules: str) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", _BUILT, *modules], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_importing_the_handlers_and_the_bot_app_builds_no_domain_model():
    built = _models_built_after_importing(
        "bot.handler", "bot.app", "backend.bootstrap", "backend.entrypoints.launcher", "backend.entrypoints.monitor",
        "backend.entrypoints.chart", "backend.services.launcher", "backend.services.monitor", "bot.listeners.commands",
    )
    assert {"Job", "JobArgs", "Attempt", "HistoryEntry", "Approval", "LogTail", "ChartRequest"} <= set(built)
    assert [name for name, complete in built.items() if complete] == []


_RACE = """
import threading, time
from pydantic._internal import _model_construction
from backend.domain.model import Owner

builds = []
complete = _model_construction.complete_model_class

def slow_complete(cls, *args, **kwargs):
    builds.append(cls.__name__)
    time.sleep(0.3)  # a build long enough for every other thread to ask for the model meanwhile
    return complete(cls, *args, **kwargs)

_model_construction.complete_model_class = slow_complete
start, owners, errors = threading.Barrier(6), [], []

def use():
    start.wait()
    try:
        owners.append(Owner.model_validate({"TeamId": "T1", "UserId": "U1"}))
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=use) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert errors == [], errors
assert [o.key for o in owners] == ["T1:U1"] * 6, owners
assert builds == ["Owner"], builds
"""


def test_a_model_first_used_by_several_threads_at_once_is_built_once_and_validates_for_each():
    done = subprocess.run([sys.executable, "-c", _RACE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
