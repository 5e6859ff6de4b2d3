"""Issue 24 ("Sweeps you can read"), the grammar's half: ``metric.<name>=<regex>`` and a sweep's
``objective=`` through the template's bot handler (signed requests, lazy listeners through the
Lambda stand-in, the Slack stand-in), validated as SageMaker documents MetricDefinition."""

from __future__ import annotations

import json

from backend.domain.model import Owner
from tests.bot_fixtures import GOOD_SUBMIT, TEAM, USER, answer_text

SWEEP = GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5")


def _jobs(store):
    return store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs


def test_metric_options_become_the_requests_metric_definitions(bot_env, store):
    bot_env.command(GOOD_SUBMIT + " metric.accuracy='accuracy=([0-9.]+)' \"metric.val loss=val_loss: ([0-9.]+)\"")

    [job] = _jobs(store)
    request = job.job_args.to_request("x-a1")
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"},
        {"Name": "val loss", "Regex": "val_loss: ([0-9.]+)"},
    ]


def test_a_metric_regex_that_does_not_compile_or_is_too_long_is_refused_in_the_ack(bot_env, store):
    for bad, says in (
        ("metric.accuracy='accuracy=([0-9.]+'", "is not a regular expression"),
        ("metric.accuracy=" + "a(b)" * 130, "1 to 500 characters"),
        ("metric.accuracy=accuracy", "needs a group"),
    ):
        response = bot_env.command(GOOD_SUBMIT + " " + bad)
        text = answer_text(response)
        assert "metric.accuracy" in text and says in text, text
        assert json.loads(response["body"])["response_type"] == "ephemeral"
    forty_one = " ".join(f"metric.m{i}='m{i}=([0-9]+)'" for i in range(41))
    assert "at most 40 metric definitions" in answer_text(bot_env.command(GOOD_SUBMIT + " " + forty_one))
    assert _jobs(store) == []


def test_a_sweeps_objective_must_name_a_defined_metric(bot_env, store):
    text = answer_text(bot_env.command(SWEEP + " metric.accuracy='accuracy=([0-9.]+)' objective=max:loss"))
    assert "objective" in text and "'loss' is not a defined metric" in text
    text = answer_text(bot_env.command(SWEEP + " metric.accuracy='accuracy=([0-9.]+)' objective=best:accuracy"))
    assert "min:&lt;metric&gt; or max:&lt;metric&gt;" in text  # escaped for Slack
    text = answer_text(bot_env.command(GOOD_SUBMIT + " metric.accuracy='accuracy=([0-9.]+)' objective=max:accuracy"))
    assert "use it with /train sweep" in text
    assert _jobs(store) == []

    bot_env.command(SWEEP + " metric.accuracy='accuracy=([0-9.]+)' objective=max:accuracy", trigger_id="1.2.obj")
    jobs = _jobs(store)
    assert len(jobs) == 2
    assert all(j.job_args.AlgorithmSpecification.MetricDefinitions[0].Name == "accuracy" for j in jobs)
