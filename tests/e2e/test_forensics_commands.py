"""Issue 15 through the bot: a signed `/train submit` with ``spot=true`` and ``stall_alert=45m``
registers a job whose checkpoint location is its own and whose stall alert is set, and the help
explains both; a spot submit without ``max_wait`` is refused with the rule."""

from __future__ import annotations

from tests.bot_fixtures import GOOD_SUBMIT, TEAM, USER, answer_text


def _jobs(store):
    from backend.domain.model import Owner

    return store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs


def test_a_spot_submit_with_a_stall_alert_gets_its_own_checkpoint_location_and_the_alert(bot_env, store):
    response = bot_env.command(GOOD_SUBMIT + " spot=true max_wait=2h stall_alert=45m")

    assert response["statusCode"] == 200
    [job] = _jobs(store)
    assert job.stall_alert_seconds == 45 * 60
    assert job.job_args.EnableManagedSpotTraining
    output = job.job_args.OutputDataConfig.S3OutputPath.rstrip("/")
    assert job.job_args.CheckpointConfig is not None and job.job_args.CheckpointConfig.S3Uri == f"{output}/{job.job_id}/checkpoints"


def test_a_spot_submit_without_max_wait_is_refused_with_the_rule_and_nothing_is_written(bot_env, store):
    text = answer_text(bot_env.command(GOOD_SUBMIT + " spot=true"))
    assert "spot training needs max_wait" in text and "max_runtime" in text
    assert _jobs(store) == []


def test_help_explains_spot_checkpoints_and_stall_alert(bot_env):
    text = answer_text(bot_env.command("help"))
    assert "max_wait" in text and "checkpoints" in text and "stall_alert" in text
