"""What `sam build` makes is what runs on Lambda, and it works there.

The functions are built with the pinned AWS SAM CLI exactly as the deploy guide says (arm64 as
deployed, plus an x86_64 twin where this machine is not arm64), their sizes are checked against
the budgets and printed, and the twin's artifacts are run as Lambda runs them: an isolated
python3.13 seeing only the artifact and a boto3 of its own, the environment template.yaml
declares, and documented event shapes (tests/fixtures) from moto and the local stand-ins."""

from __future__ import annotations

import base64
import json
import time

from infra.deploy import artifacts
from infra.deploy.artifacts import BUDGETS_MB, MB
from infra.local.standins.slack_signing import signed_headers, slash_command_body
from tests.bot_fixtures import CHANNEL, GOOD_SUBMIT, SECRET, TEAM, USER, answer_text
from tests.fixtures import samples

FUNCTIONS = {"BotFunction", "LauncherFunction", "MonitorFunction", "ChartFunction"}
CHART_STACK = {"matplotlib", "numpy", "PIL"}


def _signed(text: str, response_url: str = "") -> dict:
    body = slash_command_body(text=text, user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=response_url)
    return samples.function_url_event(body, signed_headers(SECRET, body))


def test_sam_build_makes_each_function_within_its_budget_from_source_and_its_own_requirements(builds):
    deployed, runnable = builds["deployed"], builds["runnable"]
    assert deployed.architecture == artifacts.template_architecture() == "arm64"
    for built in {deployed.architecture: deployed, runnable.architecture: runnable}.values():
        assert set(built.functions) == FUNCTIONS
        assert artifacts.check(built) == [], artifacts.size_table(built)
        for name, path in built.functions.items():
            top = {p.name for p in path.iterdir()}
            assert {"backend"} <= top and ("bot" in top) == (name == "BotFunction"), (name, sorted(top))
            assert not top & {"tests", "bench", "infra", "boto3", "botocore"}, (name, sorted(top))
            # matplotlib and numpy in the chart function's artifact, and in no other.
            assert top >= CHART_STACK if name == "ChartFunction" else not top & CHART_STACK, (name, sorted(top))
            assert ("slack_bolt" in top) == (name == "BotFunction"), "only the bot carries slack-bolt"
            assert {"aws_lambda_powertools", "pydantic", "pydantic_core", "slack_sdk"} <= top, (name, sorted(top))
    sizes = deployed.sizes()
    for name, size in sizes.items():
        assert size <= BUDGETS_MB[name] * MB, f"{name}: {size / MB:.1f} MB"
    # The deployed build is for arm64 Lambda: its compiled extensions are aarch64 ones.
    compiled = [p.name for p in deployed.functions["MonitorFunction"].rglob("*.so")]
    assert compiled and all("aarch64" in name for name in compiled), compiled


def test_every_module_of_every_artifact_ships_bytecode_for_python313_valid_without_its_timestamps(builds):
    # /var/task is read-only and SAM zips files with a 1980 timestamp: only an unchecked-hash
    # .pyc of the runtime's own magic number, next to each module, spares a cold start compiling it.
    for built in {b.architecture: b for b in builds.values()}.values():
        for name, path in built.functions.items():
            modules = list(path.rglob("*.py"))
            assert len(modules) > 100, (name, len(modules))
            assert artifacts.modules_without_bytecode(path) == [], f"{name} ({built.architecture})"


def test_the_built_bot_imports_its_modules_from_bytecode_and_compiles_none(stack):
    # A first request wires the bot (most of its imports); none of them was compiled on import.
    assert stack.functions["BotFunction"].invoke(_signed("help"))["statusCode"] == 200
    probe = stack.functions["BotFunction"].probe()
    artifact = str(stack.functions["BotFunction"].artifact)
    loaded = [f for f in probe["files"] if f.startswith(artifact) and f.endswith(".py")]
    assert any(f.endswith("bot/handler.py") for f in loaded)
    assert probe["compiled_from_source"] == [], probe["compiled_from_source"][:5]


def test_under_snapstart_the_built_bot_imports_its_wiring_at_init_and_still_refuses_before_reading_the_secret(stack):
    # What the snapshot holds: the modules of the wiring, imported while Lambda initializes the
    # version (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start); an unsigned request is still refused first.
    bot = stack.functions["BotFunction"]
    snap = bot.cold(environment={**bot.environment, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})
    on_demand = bot.cold()
    try:
        artifact = str(bot.artifact)
        preloaded = set(snap.probe()["files"])
        for module in ("bot/app.py", "backend/bootstrap.py", "slack_bolt/adapter/aws_lambda/handler.py"):
            assert f"{artifact}/{module}" in preloaded
            assert f"{artifact}/{module}" not in on_demand.probe()["files"]
        assert snap.invoke(samples.function_url_event("command=%2Ftrain&text=help", {}))["statusCode"] == 401
        assert "/train submit" in answer_text(snap.invoke(_signed("help")))
    finally:
        snap.close()
        on_demand.close()


def test_each_artifact_runs_in_an_isolated_python313_that_sees_only_the_artifact_and_its_boto3(stack):
    # The interpreter's own lib/ (its standard library), as Lambda's runtime has /var/lang/lib.
    stdlib = artifacts.find_python().resolve().parent.parent / "lib"
    for function in stack.functions.values():
        probe = function.probe()
        assert probe["version"][:2] == [3, 13] and probe["flags"] == {"isolated": 1, "no_site": 1}
        roots = [str(function.artifact), str(function.boto3_dir), str(stdlib)]
        assert all(any(entry.startswith(root) for root in roots) for entry in probe["sys_path"]), probe["sys_path"]
        strays = [f for f in probe["files"] if not any(f.startswith(root) for root in roots)]
        assert strays == [], f"{function.name} imported from outside its artifact: {strays[:5]}"
        handler_module = function.handler.rpartition(".")[0].replace(".", "/") + ".py"
        assert str(function.artifact / handler_module) in probe["files"]


def test_a_signed_train_help_through_the_built_bot_answers_with_the_usage(stack):
    bot = stack.functions["BotFunction"]
    response = bot.invoke(_signed("help"))
    assert response["statusCode"] == 200
    assert "/train submit" in answer_text(response)


def test_the_built_bot_refuses_unsigned_and_malformed_requests_with_a_401(stack):
    bot = stack.functions["BotFunction"]
    for body in ("payload=%7Bnot-json", "payload=null", "command=%2Ftrain&text=help"):
        assert bot.invoke(samples.function_url_event(body, {"content-type": "application/x-www-form-urlencoded"}))["statusCode"] == 401
    body = slash_command_body(text="help", user_id=USER, team_id=TEAM)
    headers = {**signed_headers(SECRET, body), "X-Slack-Request-Timestamp": "soon"}
    assert bot.invoke(samples.function_url_event(body, headers))["statusCode"] == 401


def _items(stack) -> list[dict]:
    dynamodb = stack.client("dynamodb")
    items = dynamodb.scan(TableName=stack.table)["Items"]
    return [item for item in items if "JobStatus" in item]


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_one_job_from_submit_to_completed_through_the_built_bot_launcher_and_monitor(stack):
    bot, launcher, monitor = (stack.functions[n] for n in ("BotFunction", "LauncherFunction", "MonitorFunction"))

    # Submit: the ack answers at once; the lazy listener (bolt invokes the bot's own ARN
    # through the Lambda stand-in) registers the job and posts its card.
    # A real submit carries a response_url: the lazy listener answers the submitter there.
    ack = bot.invoke(_signed(GOOD_SUBMIT, stack.slack.response_url(CHANNEL, USER)))
    assert ack["statusCode"] == 200, ack
    (item,) = _wait(lambda: _items(stack))
    stack.lam.wait_idle(30)
    assert stack.lam.errors() == []
    assert item["JobStatus"]["S"] == "New" and item["JobId"]["S"].startswith("tb-")
    job_id = item["JobId"]["S"]
    assert stack.slack.wait_for(lambda: [m for m in stack.slack.messages(CHANNEL) if job_id in json.dumps(m)])

    # The launcher's schedule, as EventBridge delivers it.
    report = launcher.invoke(samples.scheduled_event())
    assert report["launched"] == 1, report
    name = f"{job_id}-a1"
    assert stack.sagemaker.describe_job(name)["TrainingJobStatus"] == "InProgress"

    # SageMaker runs it to the end; its state change reaches the monitor in the documented
    # shape: times as strings of epoch milliseconds.
    stack.sagemaker.advance(3600)
    described = stack.sagemaker.describe_job(name)
    assert described["TrainingJobStatus"] == "Completed"
    millis = {key: str(int(_epoch(described[key]) * 1000)) for key in ("CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime")}
    event = samples.sagemaker_state_change(TrainingJobName=name, TrainingJobArn=described["TrainingJobArn"],
                                           TrainingJobStatus="Completed", SecondaryStatus="Completed", **millis)
    event["resources"] = [described["TrainingJobArn"]]
    report = monitor.invoke(event)
    assert report["applied"] == 1 and report["moved"] == {"Completed": 1}, report

    (item,) = _items(stack)
    assert item["JobStatus"]["S"] == "Completed"
    # The sweep (the monitor's schedule) finds nothing left to do and nothing pending.
    sweep = monitor.invoke(samples.scheduled_event())
    assert sweep["notifications_pending"] == 0 and sweep["observed"] == 0
    thread = [m for m in stack.slack.calls_to("chat.postMessage") if m.params.get("thread_ts")]
    assert any("Completed" in json.dumps(call.params) or "completed" in json.dumps(call.params) for call in thread)


def test_the_built_monitors_sweep_takes_the_days_list_prices_from_the_price_list_stand_in(stack):
    # List prices are on by default: the sweep fetches them once a day (no call leaves the machine).
    assert "notifications_pending" in stack.functions["MonitorFunction"].invoke(samples.scheduled_event())
    assert stack.prices.calls >= 1
    record = stack.client("dynamodb").get_item(TableName=stack.table, Key={"JobId": {"S": "prices#us-east-1"}})["Item"]
    assert record["List"]["M"]["latest"]["M"]["Prices"]["M"]


def test_stats_through_the_built_bot_has_the_built_chart_function_post_the_chart_in_the_summarys_thread(stack):
    bot, chart = stack.functions["BotFunction"], stack.functions["ChartFunction"]
    ack = bot.invoke(_signed("stats all days=3", stack.slack.response_url(CHANNEL, USER)))
    assert ack["statusCode"] == 200, ack
    _wait(lambda: stack.slack.files, timeout=90)
    stack.lam.wait_idle(90)
    assert stack.lam.errors() == []
    # Read once the chart function is done: `files` is a copy, and the upload exists (step 2)
    # before files.completeUploadExternal shares it in the thread (step 3).
    (uploaded,) = stack.slack.files
    assert uploaded["content"].startswith(b"\x89PNG\r\n\x1a\n") and uploaded["name"] == "trainbot-stats.png"
    (summary,) = [m for m in stack.slack.messages(CHANNEL) if "last 3 days" in json.dumps(m.get("blocks") or [])]
    assert [(s["channel"], s["thread_ts"]) for s in uploaded["shares"]] == [(CHANNEL, summary["ts"])]
    (reply,) = [r for r in stack.slack.messages(CHANNEL)[-1]["replies"] if r.get("files")]
    assert reply["text"].startswith(":bar_chart: Jobs per day by outcome, everyone's jobs, last 3 days:")
    # Drawn where matplotlib is: the chart function loaded it from its artifact; the bot never did.
    artifact = str(chart.artifact)
    assert any(f.startswith(f"{artifact}/matplotlib/") for f in chart.probe()["files"])
    assert not any("/matplotlib/" in f or "/numpy/" in f for f in bot.probe()["files"])


def test_the_built_monitor_counts_an_unparseable_event_instead_of_failing(stack):
    event = samples.sagemaker_state_change(TrainingJobName="tb-x-a1", TrainingStartTime="yesterday")
    assert stack.functions["MonitorFunction"].invoke(event)["unparseable"] == 1


def _epoch(value) -> float:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def test_a_base64_encoded_function_url_body_is_read_by_the_built_bot(stack):
    body = slash_command_body(text="help", user_id=USER, team_id=TEAM, channel_id=CHANNEL)
    event = samples.function_url_event(base64.b64encode(body.encode()).decode(), signed_headers(SECRET, body), base64=True)
    assert stack.functions["BotFunction"].invoke(event)["statusCode"] == 200


def test_the_deploy_guide_is_what_this_test_does_and_states_the_sizes_it_measured(builds, tmp_path):
    import re

    from tests.deploy.test_deploy_guide import deploy_section

    section = deploy_section()
    assert "python -m infra.deploy.requirements --check" in section and "--use-container" not in section
    assert re.search(r"^PATH=.*3\.13.* sam build ", section, flags=re.M), "the guide's sam build, python3.13 on PATH"
    # Then the bytecode step this build runs too (artifacts.build calls the same compile_bytecode).
    assert re.search(r"sam build .*\n(?:#.*\n)*python -m infra\.deploy\.artifacts --compile \.aws-sam/build\b.*\n(?:.*\n)*?sam deploy",
                     section), "the guide compiles the build's bytecode between sam build and sam deploy"
    # The build here is a plain `sam build` of template.yaml (only the output folder is ours).
    command = artifacts.sam_build_command(artifacts.template_architecture(), tmp_path)
    assert command[1:] == ["build", "--build-dir", str(tmp_path / "build"), "--template-file", str(artifacts.TEMPLATE_PATH)]
    stated = {name: (float(arm), float(x86)) for name, arm, x86 in
              re.findall(r"^\| (\w+Function) \| ([\d.]+) MB \| ([\d.]+) MB \| \d+ MB \|$", section, flags=re.M)}
    assert set(stated) == FUNCTIONS
    measured = {name: size / MB for name, size in builds["deployed"].sizes().items()}
    twin = {name: size / MB for name, size in builds["runnable"].sizes().items()}
    for name in FUNCTIONS:
        # Within 1 MB: the README is updated when an artifact's size really changes.
        assert abs(stated[name][0] - measured[name]) <= 1.0, (name, stated[name], measured[name])
        if builds["runnable"] is not builds["deployed"]:
            assert abs(stated[name][1] - twin[name]) <= 1.0, (name, stated[name], twin[name])
        budget = re.search(rf"^\| {name} \|.*\| (\d+) MB \|$", section, flags=re.M)
        assert budget is not None and int(budget.group(1)) == BUDGETS_MB[name]
