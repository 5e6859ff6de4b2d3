"""`./dev local`'s terminal (issue 24): after the banner, one readable line per job transition
and nothing else (no bolt token warnings, no raw EMF metric blobs, no handler log lines)
unless `--verbose`. Run as a user runs it: a process of its own, a job submitted on the page,
through to Completed, then Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBMIT = (
    "/train submit name=quiet image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest instance=ml.g5.xlarge "
    "output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole hp.trainbot_standin_duration=1"
)
TRANSITION = re.compile(r"^\d\d:\d\d:\d\d  (tb-quiet-\S+)\s+(\S+) -> (\S+)")


def _read_until(process: subprocess.Popen, marker: str, seen: list[str]) -> None:
    for line in process.stdout:
        seen.append(line.rstrip("\n"))
        if marker in line:
            return
    pytest.fail(f"no {marker!r} in:\n" + "\n".join(seen))


@pytest.mark.slow
def test_local_mode_prints_the_banner_then_only_transition_lines(tmp_path):
    env = {**os.environ, "TRAINBOT_LOCAL_FILE": str(tmp_path / "connection.json"), "PYTHONUNBUFFERED": "1"}
    for name in [n for n in env if n.startswith("AWS_ENDPOINT_URL") or n.startswith("POWERTOOLS_")]:
        del env[name]
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.entrypoints.cli", "local", "--port", "0", "--chaos", "0",
         "--launcher-every", "0.1", "--monitor-every", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    banner: list[str] = []
    seen: list[str] = []
    try:
        _read_until(process, "Ctrl-C stops everything", banner)
        page = re.search(r"page:\s+(http://\S+/)", "\n".join(banner)).group(1)
        request = urllib.request.Request(
            page + "page/command", data=json.dumps({"text": SUBMIT, "user": "U0YOU"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["status"] == 200
        _read_until(process, "-> Completed", seen)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    lines = seen + rest.splitlines()
    assert process.returncode == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert not [line for line in lines if line.lstrip().startswith('{"_aws"')], text
    assert "`token`" not in text, text  # bolt's two token warnings
    end = lines.index("stopping…")
    assert lines[end:] == ["stopping…", "stopped: every server closed"], text
    transitions = [TRANSITION.match(line) for line in lines[:end] if line.strip()]
    assert all(transitions), text  # nothing but transition lines between the banner and Ctrl-C
    assert [(m.group(2), m.group(3)) for m in transitions] == [
        ("·", "New"), ("New", "Launched"), ("Launched", "InProgress"), ("InProgress", "Completed")
    ], text
