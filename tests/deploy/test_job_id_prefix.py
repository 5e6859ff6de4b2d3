"""TRAINBOT_JOB_ID_PREFIX: every new JobId carries the deployment's prefix, so the template can
scope SageMaker permissions to ``training-job/<prefix>*``, and ids still fit SageMaker's names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.config import Settings
from backend.domain.model import JOB_ID_MAX, SAGEMAKER_NAME, attempt_name, new_job_id, parse_attempt_name
from backend.errors import ConfigError
from tests.conftest import job_args

prefixes = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,11}\Z")


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=40)), prefixes)
def test_prefixed_ids_start_with_the_prefix_and_still_fit_sagemaker_names(name, token, prefix):
    job_id = new_job_id(name, token, prefix)
    assert job_id.startswith(prefix)
    assert len(job_id) <= JOB_ID_MAX
    assert SAGEMAKER_NAME.match(attempt_name(job_id, 999))
    assert parse_attempt_name(attempt_name(job_id, 7)) == (job_id, 7)


def test_a_long_name_is_shortened_by_the_prefix_length():
    assert len(new_job_id("x" * 100, "t", "tb-team-ml-")) == JOB_ID_MAX


@pytest.mark.parametrize("bad", ["TB-", "-tb", "tb_", "thirteen-char", "tb/"])
def test_a_bad_prefix_is_refused_by_the_settings_naming_the_variable(bad):
    with pytest.raises(ConfigError, match="TRAINBOT_JOB_ID_PREFIX"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_JOB_ID_PREFIX": bad})
    with pytest.raises(ValueError):
        new_job_id("bert", None, bad)


def test_submit_and_sweeps_register_jobs_under_the_configured_prefix(store):
    from backend.bootstrap import build
    from backend.services.jobs import Actor
    from bot.grammar import parse
    from tests.bot_fixtures import GOOD_SUBMIT

    settings = Settings.from_env({"JOBS_TABLE_NAME": store.table_name, "TRAINBOT_JOB_ID_PREFIX": "tb-"})
    container = build(settings, notifiers=lambda _store: [])
    actor = Actor(team_id="T1", user_id="U1")
    single = container.jobs.submit(name="bert lr3", job_args=job_args(), actor=actor).job
    assert single.job_id.startswith("tb-bert-lr3-")

    fields = {**parse(GOOD_SUBMIT).fields, "name": "sweep-a", "hp.lr": "1e-5,3e-5"}
    outcome = container.submissions.sweep(fields, actor, token="t1", channel_id="C1", post_root=lambda _root: "1.0")
    assert len(outcome.job_ids) == 2 and all(i.startswith("tb-sweep-a-") for i in outcome.job_ids)
