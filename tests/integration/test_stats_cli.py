"""`trainbot stats` and `trainbot export` against the jobs table (moto): the subcommands that
backend.entrypoints.cli.stats adds, run as the CLI runs them."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from backend.domain.times import utcnow
from backend.entrypoints.cli import stats as cli_stats
from backend.errors import ConfigError, InvalidRequest, StoreUnavailable
from backend.services.chart import png_size
from tests.conftest import make_job
from tests.stats_history import HOUR, known_history, seed


def _run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="trainbot")
    cli_stats.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


@pytest.fixture
def history(dynamodb, jobs_table, monkeypatch):
    monkeypatch.delenv("JOBS_TABLE_NAME", raising=False)
    monkeypatch.delenv("TRAINBOT_USER", raising=False)
    now = utcnow()
    seed(dynamodb, jobs_table, [*known_history(now), make_job("cli-job", team="cli", user="alice", now=now - HOUR)])
    return jobs_table


def test_stats_prints_the_summary_and_writes_the_chart(history, tmp_path):
    target = tmp_path / "out.png"
    code, text = _run(["stats", "--table", history, "--days", "7", "--png", str(target)])

    assert code == 0
    assert "jobs: 7  finished: 3  success rate: 67%" in text
    assert "retries by cause: capacity 1, quota 1, algorithm 1, throttling 1, manual 1" in text
    assert f"chart written to {target}" in text
    assert png_size(target.read_bytes())[0] == 1210  # 11 in at 110 dpi (backend/services/chart.py)


def test_stats_mine_and_user_and_json(history, monkeypatch):
    monkeypatch.setenv("TRAINBOT_USER", "alice")
    code, text = _run(["stats", "--table", history, "--mine", "--json"])
    data = json.loads(text)
    assert code == 0 and data["total"] == 1 and data["scope"] == "alice" and "coverage" in data

    code, text = _run(["stats", "--table", history, "--user", "U1", "--json", "--days", "7"])
    assert json.loads(text)["total"] == 6


def test_export_writes_csv_to_a_file_and_jsonl_to_stdout(history, tmp_path):
    target = tmp_path / "jobs.csv"
    since = (utcnow() - 7 * 24 * HOUR).strftime("%Y-%m-%d")
    code, text = _run(["export", "--table", history, "--since", since, "--format", "csv", "--out", str(target)])
    assert code == 0 and text == f"exported 7 jobs to {target}\n"
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 7 and {r["name"] for r in rows} >= {"a", "cli-job"}

    recent = (utcnow() - 2 * HOUR).isoformat()
    code, text = _run(["export", "--table", history, "--since", recent, "--format", "jsonl"])
    names = sorted(json.loads(line)["name"] for line in text.splitlines())
    assert code == 0 and names == ["cli-job", "e"]


def test_bad_arguments_are_usage_errors(history):
    with pytest.raises(InvalidRequest):
        _run(["stats", "--table", history, "--days", "0"])
    with pytest.raises(InvalidRequest):
        _run(["export", "--table", history, "--since", "last tuesday"])
    with pytest.raises(InvalidRequest):
        _run(["export", "--table", history, "--since", "2026-11-02", "--until", "2026-11-01"])


def test_without_a_table_the_configuration_error_names_the_variable(moto_aws, monkeypatch):
    monkeypatch.delenv("JOBS_TABLE_NAME", raising=False)
    with pytest.raises(ConfigError, match="JOBS_TABLE_NAME"):
        _run(["stats"])


def test_a_missing_table_is_aws_unavailable(moto_aws, monkeypatch):
    with pytest.raises(StoreUnavailable):
        _run(["stats", "--table", "no-such-table"])


def test_the_trainbot_command_runs_them_with_its_exit_codes(history):
    from backend.entrypoints import cli

    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["stats", "--table", history, "--days", "7"], out=out, err=err) == 0
    assert "jobs: 7" in out.getvalue()
    assert cli.main(["--table", history, "stats", "--days", "0"], out=out, err=err) == 2
    assert "--days must be between 1 and 366" in err.getvalue()
    assert cli.main(["stats", "--table", "no-such-table"], out=out, err=err) == 5
