"""The CLI's own logic without I/O: specs as grammar fields, argument errors, exit codes before
anything is reached, the progress bar."""

from __future__ import annotations

import io

import pytest

from backend.domain.spec import BadCommand
from backend.entrypoints.cli import ProgressBar, build_parser, main
from backend.entrypoints.cli.specs import spec_fields


def test_a_spec_maps_to_the_grammars_fields_with_yaml_values_as_text():
    fields = spec_fields(
        {
            "name": "bert",
            "count": 2,
            "spot": False,
            "input": {"train": "s3://b/train", "validation": "s3://b/val"},
            "hp": {"lr": 3e-5, "epochs": 3},
            "tags": {"team": "nlp"},
        }
    )
    assert fields == {
        "name": "bert",
        "count": "2",
        "spot": "false",
        "input.train": "s3://b/train",
        "input.validation": "s3://b/val",
        "hp.lr": "3e-05",
        "hp.epochs": "3",
        "tag.team": "nlp",
    }


def test_a_sweep_spec_takes_lists_and_a_submit_spec_refuses_them():
    assert spec_fields({"hp": {"lr": [1, 2, 3]}}, sweep=True) == {"hp.lr": "1,2,3"}
    with pytest.raises(BadCommand) as refused:
        spec_fields({"hp": {"lr": [1, 2]}})
    assert "trainbot sweep" in refused.value.problems[0]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"nmae": "x"}, "is not a spec key"),
        (["name", "x"], "must be a YAML mapping"),
        ({"hp": "lr=1"}, "expected a mapping"),
        ({"name": {"nested": 1}}, "is not a value here"),
    ],
)
def test_a_malformed_spec_names_the_problem(spec, words):
    with pytest.raises(BadCommand) as refused:
        spec_fields(spec)
    assert words in " ".join(refused.value.problems)


def test_help_has_examples_and_exit_codes_and_exits_0(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "trainbot submit --spec job.yaml" in text and "exit codes" in text
    assert main(["submit", "--help"]) == 0
    assert "A spec is YAML" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["list", "--limit", "many"], ["local", "--chaos", "lots"]])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2


def test_without_a_table_the_cli_says_how_to_name_one_and_exits_2(monkeypatch):
    monkeypatch.delenv("JOBS_TABLE_NAME", raising=False)
    err = io.StringIO()
    assert main(["list"], out=io.StringIO(), err=err) == 2
    assert "--table" in err.getvalue() and "JOBS_TABLE_NAME" in err.getvalue()


def test_a_bad_key_value_word_exits_2_before_anything_is_reached(monkeypatch):
    monkeypatch.delenv("JOBS_TABLE_NAME", raising=False)
    err = io.StringIO()
    assert main(["submit", "nmae=x"], out=io.StringIO(), err=err) == 2
    assert "'nmae' is not a key" in err.getvalue()


def test_options_before_and_after_the_subcommand_both_count():
    parser = build_parser()
    assert parser.parse_args(["--table", "t1", "list"]).table == "t1"
    assert parser.parse_args(["list", "--table", "t2"]).table == "t2"
    assert parser.parse_args(["--local", "list", "--all"]).local is True


def test_the_progress_bar_on_a_pipe_prints_a_line_per_tenth():
    stream = io.StringIO()
    bar = ProgressBar("registering", stream=stream)
    for done in range(25, 1001, 25):
        bar(done, 1000)
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 11
    assert lines[-1].endswith("1,000/1,000")
