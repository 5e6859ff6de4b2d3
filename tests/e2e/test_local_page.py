"""The Slack-like page of `trainbot local`, in a real headless browser (Debian's chromium,
driven by Playwright): a typed `/train submit` shows the job's card, its thread follows the job
to Completed, and Stop on another job's card stops it. What the page shows is checked against
the jobs table too.

Chromium is installed by the test set-up (`./dev test`); when it is missing this test fails,
it never skips: a page nobody looked at is not tested."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

import pytest

from backend.domain.model import Owner
from backend.domain.status import JobStatus
from infra.local import TEAM_ID, LocalOptions, LocalStack, cost_guard_parameters
from tests.e2e.local_loop import card_says, drive_until, jobs_named, replies, until_status

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SUBMIT = (
    "/train submit name={name} image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole "
    "hp.trainbot_standin_duration={duration}"
)


# `./dev local --budget local=6 --budget-mode approve --approve-over 3`: "you" and "admin" are admins.
GUARDED = cost_guard_parameters(budgets=["local=6"], budget_mode="approve", approve_over=3)


def _options(parameters: dict[str, str]) -> LocalOptions:
    return LocalOptions(
        port=0, chaos=0.0, launcher_every=0.5, monitor_every=2.0, events_every=0.2, startup_seconds=0.5,
        run_seconds=2.0, stop_seconds=0.5, retry_base_seconds=1.0, retry_max_seconds=3.0, seed=1,
        log_transitions=False, write_connection_file=False, parameters=parameters,
    )


@pytest.fixture(params=[{}], ids=["plain"])
def stack(request) -> Iterator[LocalStack]:
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    with LocalStack(_options(request.param)) as running:
        yield running


guarded = pytest.mark.parametrize("stack", [GUARDED], ids=["guarded"], indirect=True)


@pytest.fixture(scope="module")
def browser():
    """One chromium per module (per xdist worker); each test has a fresh context of its own."""
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `./dev test` installs Debian's chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(stack, browser):
    # A new context shares nothing with another test's (cookies, storage, cache): as a new
    # profile would.
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        tab.goto(stack.page_url)
        yield tab
    finally:
        context.close()


def _job(stack: LocalStack, name: str):
    jobs = stack.store.jobs_of_owner(Owner(team_id=TEAM_ID, user_id="U0YOU"), limit=50).jobs
    return next(j for j in jobs if j.name == name)


def _sweep_summarized(stack: LocalStack, name: str) -> bool:
    """Whether every job of sweep ``name`` ended and the sweep's card has a reply (its summary)."""
    jobs = [j for n, j in jobs_named(stack).items() if n.startswith(name + "-")]
    return len(jobs) == 3 and all(j.is_terminal for j in jobs) and bool(replies(stack, jobs[0]))


def _type(page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def test_a_typed_submit_shows_the_card_and_its_thread_reaches_completed(stack, page):
    from playwright.sync_api import expect

    _type(page, SUBMIT.format(name="page-ok", duration=1.5))

    card = page.locator("[data-testid=message]", has_text="page-ok")
    expect(card).to_be_visible()
    # One answer: "Registered" takes the place of the ack's "Registering…" (replace_original).
    expect(page.locator("[data-testid=ephemeral]", has_text="✅ Registered page-ok as")).to_be_visible()
    expect(page.locator("[data-testid=ephemeral]")).to_have_count(1)
    until_status(stack, "page-ok", JobStatus.COMPLETED, card_words="is *Completed*")
    expect(card).to_contain_text("is Completed")
    card.get_by_test_id("thread-toggle").click()
    thread = card.get_by_test_id("thread")
    expect(thread).to_contain_text("Completed")  # the one reply a happy path gets (backend.domain.notice)
    assert _job(stack, "page-ok").status is JobStatus.COMPLETED


def test_code_is_shown_as_typed_and_the_bots_emoji_as_slack_shows_them(stack, page):
    from playwright.sync_api import expect

    _type(page, "/train help")
    help_answer = page.locator("[data-testid=ephemeral]", has_text="SageMaker training from Slack")
    expect(help_answer.locator("code", has_text="role=arn:aws:iam::123456789012:role/SageMakerRole")).to_have_count(1)
    assert "☁" not in help_answer.inner_text()
    _type(page, "/train budget")
    expect(page.locator("[data-testid=ephemeral]", has_text="💸 No budgets are configured")).to_be_visible()
    # The renderer itself: no emoji or bold inside code, bold around it, unknown names as typed.
    assert page.evaluate("fmt('*Team `a:lock:b`* :bar_chart: :no_such_emoji: ```arn:aws:iam::1```')") == (
        "<b>Team <code>a:lock:b</code></b> 📊 :no_such_emoji: <pre>arn:aws:iam::1</pre>"
    )


def test_stop_on_a_running_jobs_card_stops_it(stack, page):
    from playwright.sync_api import expect

    _type(page, SUBMIT.format(name="page-long", duration=120))
    card = page.locator("[data-testid=message]", has_text="page-long")
    until_status(stack, "page-long", JobStatus.IN_PROGRESS, card_words="InProgress")
    expect(card).to_contain_text("InProgress")

    card.locator("button[data-action-id=job_stop]").click()

    until_status(stack, "page-long", JobStatus.STOPPED, card_words="is *Stopped*")
    expect(card).to_contain_text("is Stopped")
    expect(page.locator("[data-testid=ephemeral]", has_text="Stopp")).to_be_visible()
    assert _job(stack, "page-long").status is JobStatus.STOPPED


def test_a_running_jobs_card_names_its_owner_and_shows_its_latest_metrics(stack, page):
    from playwright.sync_api import expect

    _type(page, SUBMIT.format(name="page-metrics", duration=60) + " metric.loss='loss=([0-9.]+)' hp.trainbot_standin_metric_loss=0.2")
    card = page.locator("[data-testid=message]", has_text="page-metrics")
    expect(card).to_contain_text("Owner @you")  # a mention, shown as Slack shows it (README, Local mode)
    drive_until(
        stack,
        "page-metrics's card to show its latest metrics",
        lambda: (j := jobs_named(stack).get("page-metrics")) is not None and card_says(stack, j, ":bar_chart: Latest metrics: loss 0."),
        watch=["page-metrics"],
    )
    expect(card).to_contain_text("📊 Latest metrics: loss 0.")
    expect(card).to_contain_text("InProgress")
    expect(card.get_by_test_id("thread-toggle")).to_have_count(0)  # told on the card; its thread has no reply
    job = _job(stack, "page-metrics")
    assert job.current_attempt.metrics and 0.2 < job.current_attempt.metrics["loss"] < 0.3


def test_submit_without_fields_opens_the_modal_and_its_errors_show_under_the_field(stack, page):
    from playwright.sync_api import expect

    _type(page, "/train submit")
    modal = page.get_by_test_id("modal")
    expect(modal).to_contain_text("Submit a training job")
    expect(modal.locator("label[for=f-image]")).to_have_text("Image")  # required: no "(optional)"
    expect(modal.locator("label[for=f-max_wait]")).to_have_text("Max wait (spot) (optional)")
    expect(modal.locator("[data-hint=max_wait]")).to_have_text(
        "Spot only: how long to wait for spot capacity, run time included; at least Max runtime."
    )
    assert modal.locator("#f-image").get_attribute("placeholder") == ""
    modal.locator("#f-name").fill("page-modal")
    modal.locator("#f-instance").fill("ml.g5.xlarge")
    modal.locator("#f-image").fill("123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest")
    modal.locator("#f-output").fill("s3://out-bucket/runs")
    modal.locator("#f-role").fill("arn:aws:iam::123456789012:role/SageMakerRole")
    modal.locator("#f-spot").fill("true")
    modal.locator("#f-max_runtime").fill("1h")
    modal.locator("button[type=submit]").click()
    expect(modal.locator("[data-error=max_wait]")).to_contain_text("Spot training needs “Max wait (spot)”")

    modal.locator("#f-max_wait").fill("2h")
    modal.locator("button[type=submit]").click()

    expect(modal).to_be_hidden()
    expect(page.locator("[data-testid=message]", has_text="page-modal")).to_be_visible()


def test_stats_on_the_page_posts_the_summary_and_the_chart_function_shows_the_chart_inline_in_its_thread(stack, page):
    from playwright.sync_api import expect

    _type(page, SUBMIT.format(name="page-stats", duration=1.0))
    until_status(stack, "page-stats", JobStatus.COMPLETED, card_words="is *Completed*")
    expect(page.locator("[data-testid=message]", has_text="page-stats")).to_contain_text("is Completed")

    _type(page, "/train stats days=2")

    summary = page.locator("[data-testid=message]", has_text="Everyone's jobs, last 2 days")
    expect(summary).to_be_visible()
    expect(summary.get_by_test_id("thread-toggle")).to_have_text("1 reply ▸", timeout=60_000)  # the chart function's upload
    summary.get_by_test_id("thread-toggle").click()
    reply = summary.get_by_test_id("thread").get_by_test_id("reply")
    expect(reply).to_contain_text("Jobs per day by outcome, everyone's jobs, last 2 days: 1 job, 100% of finished completed")
    image = reply.get_by_test_id("file-image").locator("img")
    expect(image).to_be_visible()
    # Shown inline, and really a picture: the browser decoded the PNG the stand-in stored.
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") >= 1000
    expect(page.locator("[data-testid=ephemeral]", has_text="the chart follows in its thread")).to_be_visible()
    # Drawn in this process by the template's ChartFunction, invoked through the Lambda stand-in.
    assert stack.driver.functions["ChartFunction"].invocations == 1 and stack.driver.functions["ChartFunction"].errors == 0
    (uploaded,) = stack.slack.files
    assert uploaded["content"].startswith(b"\x89PNG")


def test_the_stats_chart_is_served_when_the_stats_service_exists(stack):
    import importlib.util
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(stack.page_url + "stats.png", timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, b""
    if importlib.util.find_spec("backend.services.stats") is None:
        assert status == 404
    else:
        assert status == 200 and body.startswith(b"\x89PNG")


HELD = SUBMIT + " max_runtime=4h"  # 4 instance-hours > --approve-over 3: held for an admin


@guarded
def test_an_admin_approves_a_held_job_in_the_dm_and_the_job_runs(stack, page):
    from playwright.sync_api import expect

    _type(page, HELD.format(name="page-held", duration=1.5))
    card = page.locator("[data-testid=message]", has_text="page-held")
    expect(card).to_contain_text("Waiting for an admin's approval")

    page.get_by_test_id("dm").click()  # "you" (U0YOU) is an admin: the card is in their DM
    request = page.locator("[data-testid=message]", has_text="Approval needed")
    expect(request).to_contain_text("page-held")
    expect(request).to_contain_text("instance-hours")  # the estimate
    expect(request).to_contain_text("Why: ")  # the reasons it is held
    expect(page.locator("[data-testid=message]", has_text="page-held as")).to_have_count(0)  # not the channel
    expect(page.get_by_test_id("composer")).to_be_hidden()  # commands go to the channel
    request.locator("button[data-action-id=job_approve]").click()
    expect(page.locator("[data-testid=ephemeral]", has_text="Approved")).to_be_visible()

    page.get_by_test_id("channel").click()
    expect(card).not_to_contain_text("Waiting for an admin's approval")
    until_status(stack, "page-held", JobStatus.COMPLETED, card_words="is *Completed*")
    expect(card).to_contain_text("is Completed")
    assert _job(stack, "page-held").status is JobStatus.COMPLETED


@guarded
def test_an_admin_rejects_a_held_job_with_a_reason_in_the_dm(stack, page):
    from playwright.sync_api import expect

    _type(page, HELD.format(name="page-nope", duration=1.5))
    card = page.locator("[data-testid=message]", has_text="page-nope")
    expect(card).to_contain_text("Waiting for an admin's approval")
    page.get_by_test_id("user").select_option("U0ADMIN")  # the other admin's DM has the card too

    page.get_by_test_id("dm").click()
    page.locator("[data-testid=message]", has_text="page-nope").locator("button[data-action-id=job_reject]").click()
    modal = page.get_by_test_id("modal")
    expect(modal).to_contain_text("rejected?")
    modal.locator("#f-reason").fill("too big for this week")
    modal.locator("button[type=submit]").click()
    expect(modal).to_be_hidden()
    expect(page.locator("[data-testid=ephemeral]", has_text="Rejected")).to_be_visible()

    page.get_by_test_id("channel").click()
    expect(card).to_contain_text("too big for this week")
    expect(card).not_to_contain_text("Waiting for an admin's approval")
    job = _job(stack, "page-nope")
    assert job.status is JobStatus.STOPPED and job.approval.decided_by == "U0ADMIN"


def test_a_whole_session_stays_quiet_and_honest(stack, page):
    """Issue 24's session, as a scientist would drive it: a long job holds the only p5 there is;
    a job with a fallback list runs on its second type; a sweep with a metric and an objective
    ends with its results table, best first; the long job is stopped by its name; the stats
    chart shows inline. Then the channel is read as its user reads it: one reply per thing a
    person acts on, and no raw ids, escapes, setting names or doubled words anywhere."""
    from playwright.sync_api import expect

    p5 = SUBMIT.replace("instance=ml.g5.xlarge", "instance=ml.p5.48xlarge")
    _type(page, p5.format(name="s-long", duration=120))
    long_card = page.locator("[data-testid=message]", has_text="s-long")
    until_status(stack, "s-long", JobStatus.IN_PROGRESS, card_words="InProgress")
    expect(long_card).to_contain_text("InProgress")

    fallback = SUBMIT.replace("instance=ml.g5.xlarge", "instance=ml.p5.48xlarge,ml.p4d.24xlarge")
    _type(page, fallback.format(name="s-fallback", duration=1.5))
    fallback_card = page.locator("[data-testid=message]", has_text="s-fallback")
    until_status(stack, "s-fallback", JobStatus.COMPLETED, card_words="is *Completed*")
    expect(fallback_card).to_contain_text("is Completed")
    expect(fallback_card).to_contain_text("ml.p4d.24xlarge × 1 (of ml.p5.48xlarge, ml.p4d.24xlarge)")

    sweep = SUBMIT.replace("/train submit", "/train sweep").format(name="s-sweep", duration=1.0)
    _type(page, sweep + " hp.lr=1e-5,3e-5,1e-4 metric.loss='loss=([0-9.]+)' objective=min:loss")
    sweep_card = page.locator("[data-testid=message]", has_text="Sweep s-sweep")
    drive_until(stack, "the sweep's summary", lambda: _sweep_summarized(stack, "s-sweep"), watch=["s-sweep"])
    expect(sweep_card.get_by_test_id("thread-toggle")).to_have_text("1 reply ▸")  # the summary, once

    _type(page, "/train stop s-long")  # by the name its owner gave it
    expect(page.locator("[data-testid=ephemeral]", has_text="is now Stopping")).to_be_visible()
    until_status(stack, "s-long", JobStatus.STOPPED, card_words="is *Stopped*")
    drive_until(stack, "s-long's Stopped reply", lambda: replies(stack, jobs_named(stack)["s-long"]), watch=["s-long"])
    expect(long_card).to_contain_text("is Stopped")
    expect(long_card.get_by_test_id("thread-toggle")).to_have_text("1 reply ▸")

    _type(page, "/train stats days=1")
    summary = page.locator("[data-testid=message]", has_text="Everyone's jobs, last 1 day")
    expect(summary.get_by_test_id("thread-toggle")).to_have_text("1 reply ▸", timeout=60_000)

    # Each thread has the one reply its job earned: the fallback's launch on its second type
    # and its capacity retry are on the card, not in the thread.
    for card in (long_card, fallback_card, sweep_card, summary):
        expect(card.get_by_test_id("thread-toggle")).to_have_text("1 reply ▸")
        card.get_by_test_id("thread-toggle").click()
    expect(long_card.get_by_test_id("thread")).to_contain_text("s-long was stopped by @you")
    expect(fallback_card.get_by_test_id("thread")).to_contain_text("s-fallback finished")
    expect(fallback_card.get_by_test_id("thread")).to_contain_text("ml.p4d.24xlarge")

    # The sweep's results, best first by the lowest final loss SageMaker reported.
    sweep_jobs = [
        j for j in stack.store.jobs_of_owner(Owner(team_id=TEAM_ID, user_id="U0YOU"), limit=50).jobs if j.name.startswith("s-sweep-")
    ]
    assert len(sweep_jobs) == 3 and all(j.status is JobStatus.COMPLETED and j.final_metrics for j in sweep_jobs)
    best_first = [j.name for j in sorted(sweep_jobs, key=lambda j: j.final_metrics["loss"])]
    table = sweep_card.get_by_test_id("thread").inner_text()
    assert "Results, best first by lowest loss" in table
    rows = [line for line in table.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert [row.split(" · ")[0][3:] for row in rows] == best_first, table
    assert all("lr=" in row and "Completed" in row and "loss 0." in row for row in rows), table

    image = summary.get_by_test_id("thread").get_by_test_id("file-image").locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())

    # Read as its user reads it.
    channel = page.get_by_test_id("messages").inner_text()
    for noise in (
        "U0YOU",
        "<@",
        "&amp;",
        "&lt;",
        "&gt;",
        "None",
        "null",
        "not_started",
        "TRAINBOT_",
        "Traceback",
        "stopped: stopped",
        "someone",
        " 1 days",
    ):
        assert noise not in channel, f"{noise!r} on the page:\n{channel}"
    assert not re.search(r":[a-z0-9_+-]+:(?!\d)", channel), re.search(r".{40}:[a-z0-9_+-]+:.{20}", channel)
    for done, of in re.findall(r"attempt (\d+) of (\d+)", channel):
        assert int(done) <= int(of), channel
    # One answer per command typed (the ack's "Registering…" is replaced, never added to).
    assert page.locator("[data-testid=ephemeral]").count() == 5
    assert _job(stack, "s-long").status is JobStatus.STOPPED and _job(stack, "s-fallback").status is JobStatus.COMPLETED
