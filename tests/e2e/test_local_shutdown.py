"""`trainbot local` as a user runs it: a process of its own on free ports. The CLI reaches it
through its connection file; SIGINT (Ctrl-C) or SIGTERM stops it cleanly, leaving no process,
no listening port and no connection file behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = """\
name: shutdown-job
image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest
instance: ml.g5.xlarge
output: s3://out-bucket/runs
role: arn:aws:iam::123456789012:role/SageMakerRole
hp: {trainbot_standin_duration: 1}
"""


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def _start(tmp_path: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    env = {**os.environ, "TRAINBOT_LOCAL_FILE": str(tmp_path / "connection.json"), "PYTHONUNBUFFERED": "1"}
    for name in [n for n in env if n.startswith("AWS_ENDPOINT_URL")]:
        del env[name]
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.entrypoints.cli", "local", "--port", "0", "--chaos", "0", "--launcher-every", "0.5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Ctrl-C stops everything" in line:
            return process, "".join(seen), env
    process.kill()
    pytest.fail("trainbot local did not start:\n" + "".join(seen))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.entrypoints.cli", "--local", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_local_mode_serves_the_cli_and_stops_cleanly_on_a_signal(tmp_path, stop_signal):
    process, banner, env = _start(tmp_path)
    try:
        ports = sorted({int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", banner)})
        assert len(ports) >= 5, banner  # page, bot, aws, sagemaker, lambda
        assert all(_listening(p) for p in ports)
        assert (tmp_path / "connection.json").is_file()

        (tmp_path / "job.yaml").write_text(SPEC)
        submitted = _cli(env, "submit", "--spec", str(tmp_path / "job.yaml"), "--json")
        assert submitted.returncode == 0, submitted.stderr
        assert '"status": "New"' in submitted.stdout
        listed = _cli(env, "list", "--json")
        assert listed.returncode == 0 and "shutdown-job" in listed.stdout

        process.send_signal(stop_signal)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, rest
    assert "stopped" in rest
    assert not [p for p in ports if _listening(p)]
    assert _group_alive(process.pid) == []
    assert not (tmp_path / "connection.json").exists()
    # Nothing is left for the CLI to reach: it says so with its "unavailable" code.
    assert _cli(env, "list").returncode == 5


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    return rest


@pytest.mark.slow
def test_a_second_local_mode_keeps_the_first_ones_connection_file_and_says_where_its_own_is(tmp_path):
    shared = tmp_path / "connection.json"
    first, _banner, env = _start(tmp_path)
    second = None
    try:
        second, banner, _ = _start(tmp_path)
        own = tmp_path / f"connection-{second.pid}.json"
        # It says so, and how to reach it instead.
        assert f"another trainbot local (pid {first.pid}) is using {shared}" in banner
        assert f"TRAINBOT_LOCAL_FILE={own} trainbot --local list --all" in banner
        assert json.loads(shared.read_text())["pid"] == first.pid
        assert json.loads(own.read_text())["pid"] == second.pid
        assert json.loads(own.read_text())["AWS_ENDPOINT_URL_DYNAMODB"] != json.loads(shared.read_text())["AWS_ENDPOINT_URL_DYNAMODB"]

        # The second one stopping takes its own file only: the CLI still reaches the first.
        assert second.poll() is None
        _stop(second)
        assert second.returncode == 0
        assert not own.exists()
        assert json.loads(shared.read_text())["pid"] == first.pid
        (tmp_path / "job.yaml").write_text(SPEC)
        submitted = _cli(env, "submit", "--spec", str(tmp_path / "job.yaml"), "--json")
        assert submitted.returncode == 0, submitted.stderr
        _stop(first)
        assert first.returncode == 0
        assert not shared.exists()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_a_connection_file_whose_local_mode_is_gone_is_taken_over(tmp_path):
    shared = tmp_path / "connection.json"
    shared.write_text(json.dumps({"pid": 2**22 + 12345, "JOBS_TABLE_NAME": "gone"}))  # above pid_max: no such process
    process, banner, env = _start(tmp_path)
    try:
        assert "another trainbot local" not in banner
        assert json.loads(shared.read_text())["pid"] == process.pid
        assert _cli(env, "list").returncode == 0
        _stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not shared.exists()
