"""Every `/train` command and button, signed as Slack signs them, through the handler that
template.yaml declares, with lazy listeners re-entering it through the Lambda Invoke stand-in
and every Slack call made by the real WebClient against the Slack stand-in."""

from __future__ import annotations

import json

from backend.domain.status import JobStatus
from infra.local.standins.slack_signing import block_actions_body, view_submission_body
from tests.bot_fixtures import (
    ADMIN,
    CHANNEL,
    FUNCTION,
    GOOD_SUBMIT,
    OTHER,
    TEAM,
    USER,
    answer_text,
)


def _only_job(store):
    jobs = store.jobs_of_owner(_owner(), limit=50).jobs
    assert len(jobs) == 1, jobs
    return jobs[0]


def _owner(user: str = USER):
    from backend.domain.model import Owner

    return Owner(team_id=TEAM, user_id=user)


def _click(bot_env, action_id: str, value: str, user: str = USER) -> dict:
    url = bot_env.slack.response_url(CHANNEL, user, message_ts="1700000000.000100")
    return bot_env.send(block_actions_body(action_id, value, user_id=user, team_id=TEAM, channel_id=CHANNEL, response_url=url))


def test_a_valid_submit_is_acked_registers_one_job_and_posts_its_card_as_a_thread_root(bot_env, store):
    response = bot_env.command(GOOD_SUBMIT)

    assert response["statusCode"] == 200
    assert "Registering" in answer_text(response)
    job = _only_job(store)
    assert job.status is JobStatus.NEW and job.job_args.HyperParameters == {"lr": "3e-5", "epochs": "3"}
    roots = bot_env.slack.messages(CHANNEL)
    assert len(roots) == 1 and job.job_id in roots[0]["text"]
    assert job.slack.thread_ts == roots[0]["ts"]
    assert any(job.job_id in t for t in bot_env.ephemerals())


def test_a_submit_leaves_one_answer_its_registered_in_place_of_registering(bot_env, store):
    bot_env.command(GOOD_SUBMIT)

    job = _only_job(store)
    assert bot_env.ephemerals() == [
        f":white_check_mark: Registered *bert-lr3* as `{job.job_id}`; its card follows every change and its thread gets what you'd act on.\n"
        "Estimate: ≤ 1.00 instance-hours (≤ $1.41 by built-in table of 2025-01)."
    ]


def test_a_cancelled_sweep_confirmation_shows_its_estimate_then_only_that_nothing_was_registered(bot_env, store):
    text = GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1,2,3").replace("hp.epochs=3", "hp.epochs=1,2")
    bot_env.command(text)
    [confirm] = bot_env.slack.ephemerals(user=USER)
    assert confirm["blocks"][0]["text"]["text"] == (
        "This sweep *bert-lr3* makes *6 jobs* (more than 4).\n"
        "Estimate: ≤ 6.00 instance-hours over 6 jobs (≤ $8.45 by built-in table of 2025-01).\nRegister them all?"
    )
    cancel = confirm["blocks"][1]["elements"][1]
    url = bot_env.slack.response_url(CHANNEL, USER, message_ts=confirm["ts"])
    bot_env.send(block_actions_body("sweep_cancel", cancel["value"], user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=url))

    [answer] = bot_env.slack.ephemerals(user=USER)
    assert (answer["text"], answer["blocks"]) == ("Sweep cancelled: nothing was registered.", [])
    assert store.jobs_of_owner(_owner()).jobs == []


def test_a_redelivered_submit_registers_one_job_and_posts_one_root(bot_env, store):
    bot_env.command(GOOD_SUBMIT, trigger_id="111.222.same")
    bot_env.command(GOOD_SUBMIT, trigger_id="111.222.same")

    _only_job(store)
    assert len(bot_env.slack.messages(CHANNEL)) == 1
    assert any("Already registered" in t for t in bot_env.ephemerals())


def test_a_submit_with_a_bad_value_answers_what_is_wrong_and_writes_nothing(bot_env, store):
    response = bot_env.command(GOOD_SUBMIT.replace("ml.g5.xlarge", "g5.xlarge"))

    text = answer_text(response)
    assert "instance" in text and "did you mean ml.g5.xlarge" in text and "/train submit" in text
    assert json.loads(response["body"])["response_type"] == "ephemeral"
    assert store.jobs_of_owner(_owner()).jobs == []
    assert bot_env.slack.calls == []


def test_submit_without_arguments_opens_the_modal_and_its_submission_registers_the_job(bot_env, store):
    bot_env.command("submit")
    opened = bot_env.slack.calls_to("views.open")
    assert len(opened) == 1
    view = opened[0].params["view"]
    assert view["callback_id"] == "train_submit"

    values = {
        "name": "bert-modal",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
        "instance": "ml.g5.xlarge",
        "output": "s3://out-bucket/runs",
        "role": "arn:aws:iam::123456789012:role/SageMakerRole",
        "hp": "lr=1e-4\nepochs=2",
    }
    state = {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in values.items()}
    body = view_submission_body("train_submit", state, user_id=USER, team_id=TEAM, private_metadata=view["private_metadata"])
    assert bot_env.send(body)["body"] == ""
    bot_env.send(body)  # delivered twice: still one job

    job = _only_job(store)
    assert job.name == "bert-modal" and job.job_args.HyperParameters == {"lr": "1e-4", "epochs": "2"}


def test_a_modal_submission_with_a_bad_field_shows_the_error_under_that_field(bot_env, store):
    state = {"name": {"value": {"value": "x"}}, "instance": {"value": {"value": "ml.nope"}}}
    response = bot_env.send(view_submission_body("train_submit", state, user_id=USER, team_id=TEAM))

    answer = json.loads(response["body"])
    assert answer["response_action"] == "errors"
    assert "instance" in answer["errors"] and "image" in answer["errors"]
    assert store.jobs_of_owner(_owner()).jobs == []


MODAL_JOB = {
    "name": "bert-spot",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.p4d.24xlarge, ml.g5.xlarge",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "max_runtime": "1h",
    "spot": "true",
}


def _submit_form(bot_env, values: dict[str, str]) -> dict:
    state = {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in values.items()}
    body = view_submission_body("train_submit", state, user_id=USER, team_id=TEAM, private_metadata=json.dumps({"channel": CHANNEL}))
    response = bot_env.send(body)
    return json.loads(response["body"]) if response["body"] else {}


def test_the_submit_form_offers_every_field_of_the_command_marks_the_required_ones_and_gives_hints(bot_env):
    bot_env.command("submit")
    view = bot_env.slack.calls_to("views.open")[0].params["view"]
    blocks = {b["block_id"]: b for b in view["blocks"]}

    assert set(blocks) >= {"max_wait", "checkpoint", "volume", "stall_alert", "notify", "spot", "instance"}
    assert {k for k, b in blocks.items() if not b["optional"]} == {"name", "image", "instance", "output", "role"}
    assert all("placeholder" not in b["element"] for b in blocks.values())
    assert blocks["max_wait"]["hint"]["text"] == (
        "Spot only: how long to wait for spot capacity, run time included; at least Max runtime."
    )


def test_the_submit_form_sends_a_spot_job_with_max_wait_checkpoint_volume_stall_alert_and_fallbacks(bot_env, store):
    extra = {"max_wait": "2h", "checkpoint": "s3://out-bucket/ckpt", "volume": "200", "stall_alert": "45m"}
    assert _submit_form(bot_env, {**MODAL_JOB, **extra}) == {}

    job = _only_job(store)
    args = job.job_args
    assert args.EnableManagedSpotTraining is True
    assert (args.StoppingCondition.MaxRuntimeInSeconds, args.StoppingCondition.MaxWaitTimeInSeconds) == (3600, 7200)
    assert args.CheckpointConfig.S3Uri == "s3://out-bucket/ckpt" and args.ResourceConfig.VolumeSizeInGB == 200
    assert args.ResourceConfig.InstanceType == "ml.p4d.24xlarge" and list(job.fallback_types) == ["ml.g5.xlarge"]
    assert job.stall_alert_seconds == 2700


def test_the_submit_form_answers_mistakes_under_their_own_fields_in_the_forms_words(bot_env, store):
    answer = _submit_form(bot_env, {**MODAL_JOB, "image": "", "volume": "0", "stall_alert": "10s"})

    assert answer["response_action"] == "errors"
    assert answer["errors"] == {
        "image": "Image is required.",
        "volume": "0 is out of range; volume is 1 to 16384 GB",
        "stall_alert": "“Stall alert” is at least 1m (or off)",
    }
    spot = _submit_form(bot_env, MODAL_JOB)
    assert spot["errors"] == {
        "max_wait": "Spot training needs “Max wait (spot)” (how long to wait for spot capacity, ≥ “Max runtime”)"
    }
    assert store.jobs_of_owner(_owner()).jobs == []


def test_status_answers_a_card_with_attempts_durations_and_links(bot_env, store):
    bot_env.command(GOOD_SUBMIT)
    job = _only_job(store)
    bot_env.command(f"status {job.job_id}")

    card = bot_env.slack.ephemerals(user=USER)[-1]
    blob = json.dumps(card["blocks"])
    assert job.job_id in blob and "New" in blob and "Attempts" in blob and "billable" in blob


def test_status_of_an_unknown_job_says_so_politely(bot_env):
    bot_env.command("status nope-123456")
    assert "no job `nope-123456`" in bot_env.ephemerals()[-1]


def test_list_shows_my_jobs_newest_first_and_filters_by_status(bot_env, store):
    bot_env.command(GOOD_SUBMIT)
    bot_env.command(GOOD_SUBMIT.replace("bert-lr3", "bert-lr4"))
    bot_env.command("list")
    listing = json.dumps(bot_env.slack.ephemerals(user=USER)[-1]["blocks"])
    assert listing.index("bert-lr4") < listing.index("bert-lr3")

    bot_env.command("list all status=Failed")
    assert "none found" in json.dumps(bot_env.slack.ephemerals(user=USER)[-1]["blocks"])


def test_stop_and_retry_by_command_and_by_button_follow_the_status_machine(bot_env, store):
    bot_env.command(GOOD_SUBMIT)
    job = _only_job(store)

    bot_env.command(f"retry {job.job_id}")
    assert "only Failed or Stopped" in bot_env.ephemerals()[-1]

    _click(bot_env, "job_stop", job.job_id)
    assert store.get(job.job_id).status is JobStatus.STOPPED
    assert "Stopped" in bot_env.ephemerals()[-1]

    bot_env.command(f"stop {job.job_id}")
    assert "only queued or running" in bot_env.ephemerals()[-1]

    _click(bot_env, "job_retry", job.job_id)
    assert store.get(job.job_id).status is JobStatus.RETRYING
    # Each change is a reply in the job's thread.
    thread = bot_env.slack.thread(CHANNEL, job.slack.thread_ts)
    assert [m["text"].split("*")[1] for m in thread[1:]] == ["Stopped", "Retrying"]


def test_status_stop_and_retry_take_the_name_the_owner_gave_a_job(bot_env, store):
    """A scientist types the name they chose, not the generated id: their own newest job of
    that name (for a stop, the one that has not ended; two of those are asked about)."""
    bot_env.command(GOOD_SUBMIT)
    first = _only_job(store)

    bot_env.command("status bert-lr3")
    assert first.job_id in json.dumps(bot_env.slack.ephemerals(user=USER)[-1])
    bot_env.command("stop bert-lr3")
    assert f"`{first.job_id}` is now *Stopped*" in bot_env.ephemerals()[-1]
    assert store.get(first.job_id).status is JobStatus.STOPPED

    # A second job of the same name: a stop means the live one, a retry the newest.
    bot_env.command(GOOD_SUBMIT, trigger_id="1.2.second")
    second = next(j for j in store.jobs_of_owner(_owner(), limit=50).jobs if j.job_id != first.job_id)
    bot_env.command("retry bert-lr3")
    assert "only Failed or Stopped" in bot_env.ephemerals()[-1] and second.job_id in bot_env.ephemerals()[-1]
    bot_env.command(f"retry {first.job_id}")
    assert store.get(first.job_id).status is JobStatus.RETRYING
    bot_env.command("stop bert-lr3")
    answer = bot_env.ephemerals()[-1]
    assert "names 2 of your jobs that have not ended" in answer and first.job_id in answer and second.job_id in answer
    assert store.get(first.job_id).status is JobStatus.RETRYING and store.get(second.job_id).status is JobStatus.NEW

    # Only the asker's own jobs are searched by name; someone else's name is unknown to them.
    bot_env.command("stop bert-lr3", user=OTHER)
    assert "There is no job `bert-lr3`" in bot_env.ephemerals(user=OTHER)[-1]
    assert store.get(second.job_id).status is JobStatus.NEW


def test_only_the_owner_or_an_admin_may_stop_a_job(bot_env, store):
    bot_env.command(GOOD_SUBMIT)
    job = _only_job(store)

    bot_env.command(f"stop {job.job_id}", user=OTHER)
    assert f"Only <@{USER}> (the owner) or an admin may change {job.job_id}" in bot_env.ephemerals(user=OTHER)[-1]
    _click(bot_env, "job_stop", job.job_id, user=OTHER)
    assert "(the owner) or an admin may change" in bot_env.ephemerals(user=OTHER)[-1]
    assert store.get(job.job_id).status is JobStatus.NEW


def test_the_view_logs_button_is_acknowledged(bot_env):
    assert _click(bot_env, "job_logs", "some-job")["statusCode"] == 200


def test_a_user_outside_the_allowed_list_is_refused_and_nothing_is_written(bot_env, store, monkeypatch):
    response = bot_env.command(GOOD_SUBMIT, user="U0MALLORY")
    assert "not on Trainbot's list" in answer_text(response)
    assert store.jobs_of_owner(_owner("U0MALLORY")).jobs == []
    assert bot_env.slack.calls == []

    _click(bot_env, "job_stop", "whatever-123456", user="U0MALLORY")
    assert "not on Trainbot's list" in bot_env.ephemerals(user="U0MALLORY")[-1]


def test_a_request_from_another_workspace_is_refused(bot_env, store):
    response = bot_env.command(GOOD_SUBMIT, team="T0EVIL")
    assert "another Slack workspace" in answer_text(response)
    assert bot_env.slack.calls == []


def test_an_admin_may_stop_anyones_job(bot_env, store, monkeypatch):
    monkeypatch.setenv("TRAINBOT_ALLOWED_USERS", "*")
    import bot.handler

    bot.handler.reset()
    bot_env.command(GOOD_SUBMIT)
    job = _only_job(store)
    bot_env.command(f"stop {job.job_id}", user=ADMIN)
    assert store.get(job.job_id).status is JobStatus.STOPPED


def test_help_and_unknown_subcommands_answer_the_usage(bot_env):
    help_answer = answer_text(bot_env.command("help"))
    assert "/train submit" in help_answer
    for told in ("`instance=ml.p5.48xlarge,ml.p4d.24xlarge`", "`volume` (GB of storage per instance)", "`checkpoint` (`s3://…`"):
        assert told in help_answer  # issue 24: fallback lists, volume and checkpoint are told
    unknown = answer_text(bot_env.command("launch-rockets"))
    assert "I don't know `launch-rockets`" in unknown and "/train sweep" in unknown


def test_what_the_ack_answers_whole_starts_no_lazy_invocation_of_the_function(bot_env, store):
    # Help, an unknown or malformed command, the submit modal: the lazy listener would have
    # nothing to do, so bolt must not Invoke the function for it (issue 26: within the ack).
    invoked: list = []
    bot_env.lam.add(FUNCTION, lambda event, context: invoked.append(event))
    for text in ("help", "", "launch-rockets", "status not/a-job", "submit"):
        assert bot_env.command(text)["statusCode"] == 200, text
    assert len(bot_env.slack.calls_to("views.open")) == 1
    assert invoked == []
    bot_env.command(GOOD_SUBMIT)  # a submit's work is lazy, as before
    assert len(invoked) == 1 and invoked[0]["headers"]["x-slack-bolt-lazy-only"] == "1"


def test_a_small_sweep_registers_one_job_per_combination_under_one_root(bot_env, store):
    bot_env.command(GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5"), trigger_id="9.9.sweep")

    jobs = store.jobs_of_owner(_owner(), limit=50).jobs
    assert sorted(j.job_args.HyperParameters["lr"] for j in jobs) == ["1e-5", "3e-5"]
    roots = bot_env.slack.messages(CHANNEL)
    assert len(roots) == 1 and "Sweep" in roots[0]["text"]
    assert {j.slack.thread_ts for j in jobs} == {roots[0]["ts"]}


def test_a_large_sweep_waits_for_its_owners_confirmation(bot_env, store):
    text = GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1,2,3") .replace("hp.epochs=3", "hp.epochs=1,2")
    response = bot_env.command(text)
    answer = json.loads(response["body"])
    button = answer["blocks"][1]["elements"][0]
    assert button["action_id"] == "sweep_confirm" and "6 jobs" in answer["blocks"][0]["text"]["text"]
    assert store.jobs_of_owner(_owner()).jobs == []

    _click(bot_env, "sweep_confirm", button["value"], user=OTHER)
    assert store.jobs_of_owner(_owner()).jobs == []
    # The truth about who may: the sweep's author only (not "the owner or an admin").
    assert "Only the sweep's author may confirm it" in bot_env.ephemerals(user=OTHER)[-1]
    _click(bot_env, "sweep_confirm", button["value"])
    assert len(store.jobs_of_owner(_owner(), limit=50).jobs) == 6
    _click(bot_env, "sweep_confirm", button["value"])  # a second click registers nothing more
    assert len(store.jobs_of_owner(_owner(), limit=50).jobs) == 6


def test_a_submit_whose_registration_fails_leaves_no_card_and_its_retry_posts_exactly_one(bot_env, store, monkeypatch):
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    call = BaseClient._make_api_call
    failed: list[str] = []

    def throttled_once(self, operation, params):
        # DynamoDB throttles the job's registration once, after boto3's own retries.
        if operation == "PutItem" and "JobStatus" in params.get("Item", {}) and not failed:
            failed.append(params["Item"]["JobId"]["S"])
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, operation)
        return call(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", throttled_once)

    bot_env.command(GOOD_SUBMIT, trigger_id="333.444.retried")
    assert failed
    assert store.jobs_of_owner(_owner()).jobs == []
    assert bot_env.slack.messages(CHANNEL) == []  # no Stop button for a job that does not exist

    bot_env.command(GOOD_SUBMIT, trigger_id="333.444.retried")  # the same request again
    job = _only_job(store)
    assert job.job_id == failed[0]
    roots = bot_env.slack.messages(CHANNEL)
    assert len(roots) == 1 and job.job_id in roots[0]["text"]
    assert job.slack.thread_ts == roots[0]["ts"]


def test_a_sweep_above_the_hard_cap_is_refused(bot_env, store):
    text = GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=" + ",".join(map(str, range(30))))
    assert "the limit is 20" in answer_text(bot_env.command(text))
    assert store.jobs_of_owner(_owner()).jobs == []


def test_presets_hold_team_defaults_and_only_their_creator_or_an_admin_changes_them(bot_env, store):
    bot_env.command(
        "preset save nlp image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
        "role=arn:aws:iam::123456789012:role/SageMakerRole output=s3://out-bucket/runs instance=ml.g5.xlarge"
    )
    assert "saved" in bot_env.ephemerals()[-1]
    bot_env.command("preset list")
    assert "`nlp`" in bot_env.ephemerals()[-1]
    bot_env.command("preset show nlp")
    assert "instance=ml.g5.xlarge" in bot_env.ephemerals()[-1]

    bot_env.command("submit preset=nlp name=short hp.lr=3e-5 instance=ml.p3.2xlarge")
    job = _only_job(store)
    assert job.preset == "nlp" and job.job_args.instance_type == "ml.p3.2xlarge"

    bot_env.command("preset delete nlp", user=OTHER)
    assert "belongs to" in bot_env.ephemerals(user=OTHER)[-1]
    bot_env.command("preset delete nlp")
    bot_env.command("preset list")
    assert "No presets" in bot_env.ephemerals()[-1]


def test_a_preset_named_after_a_team_is_saved_and_deleted_only_by_an_admin(bot_env, store, monkeypatch):
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp,{OTHER}=vision")
    save = (
        "preset save nlp image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
        "role=arn:aws:iam::123456789012:role/SageMakerRole output=s3://out-bucket/runs"
    )
    bot_env.command(save)
    assert "only an admin" in bot_env.ephemerals()[-1]
    assert store.get_record("preset", "nlp") is None
    assert "nlp" not in (store.get_record("preset-index", "all") or {}).get("Names", {})

    bot_env.command(save, user=ADMIN)
    assert "saved" in bot_env.ephemerals(user=ADMIN)[-1]
    bot_env.command("preset delete nlp")
    assert "only an admin" in bot_env.ephemerals()[-1]
    assert store.get_record("preset", "nlp") is not None
    bot_env.command("preset delete nlp", user=ADMIN)
    assert store.get_record("preset", "nlp") is None


def test_a_preset_with_a_bad_value_is_refused_in_the_ack(bot_env, store):
    assert "role" in answer_text(bot_env.command("preset save nlp role=admin"))
    assert store.get_record("preset", "nlp") is None


# --- issue 24: honest words ------------------------------------------------------------------------


def test_status_counts_retries_not_errors_says_attempts_in_words_and_links_only_what_sagemaker_created(bot_env, store):
    from datetime import timedelta

    from backend.domain.model import Attempt, AttemptOutcome, FailureClass, attempt_name

    bot_env.command(GOOD_SUBMIT + " retries=2")
    job = _only_job(store)
    at = job.created_at

    def ended(n: int, outcome: AttemptOutcome, cls: FailureClass, reason: str) -> Attempt:
        return Attempt(number=n, name=attempt_name(job.job_id, n), claimed_at=at + timedelta(minutes=n), ended_at=at + timedelta(minutes=n),
                       outcome=outcome, failure_class=cls, reason=reason)

    attempts = [ended(1, AttemptOutcome.NOT_STARTED, FailureClass.QUOTA, "ResourceLimitExceeded: busy")]
    attempts += [ended(n, AttemptOutcome.FAILED, FailureClass.ALGORITHM, "AlgorithmError: boom") for n in (2, 3, 4)]
    store.transition(job, JobStatus.FAILED, at=at + timedelta(minutes=5), reason="algorithm error on 3 attempts (retry budget 2): AlgorithmError: boom",
                     attempts=attempts, algorithm_failures=3)
    bot_env.command(f"status {job.job_id}")

    blocks = bot_env.slack.ephemerals(user=USER)[-1]["blocks"]
    blob, attempts_text = json.dumps(blocks), blocks[1]["text"]["text"]
    assert "algorithm retries used 2 of 2" in blob  # 3 attempts failed: the first and 2 retries
    assert f"*1.* `{job.job_id}-a1` refused by SageMaker, never created · quota in use · ran –: ResourceLimitExceeded: busy\n" in attempts_text
    assert f"*2.* `{job.job_id}-a2` failed · training code failed · ran" in attempts_text
    assert "not_started" not in blob
    assert f"jobs/{job.job_id}-a1|" not in blob and f"$3D{job.job_id}-a1|" not in blob  # no page nor log for it
    assert f"jobs/{job.job_id}-a2|console>" in blob and f"$3D{job.job_id}-a2|logs>" in blob
