"""Start on submit: registrations kick the launcher, at most one kicked run in flight."""

from __future__ import annotations

from datetime import timedelta

from backend.errors import BackendUnavailable
from backend.services.kick import KICK_TTL, Kicker, is_kick


class RecordingTrigger:
    def __init__(self, fail: bool = False) -> None:
        self.starts = 0
        self.fail = fail
        self.job_ids: list[str | None] = []

    def start_launcher(self, job_id: str | None = None) -> None:
        if self.fail:
            raise BackendUnavailable("lambda is down")
        self.starts += 1
        self.job_ids.append(job_id)


def test_the_first_registration_starts_the_launcher_and_the_next_ones_coalesce_until_it_consumes_the_kick(world):
    trigger = RecordingTrigger()
    kicker = Kicker(world.store, trigger, clock=world.clock)

    asked = [kicker.kick() for _ in range(50)]

    assert asked.count(True) == 1 and trigger.starts == 1
    kicker.consume()  # the kicked launcher starts, before it reads the queue
    assert kicker.kick() is True and trigger.starts == 2  # a job registered now gets a run of its own
    assert kicker.kick() is False and trigger.starts == 2


def test_while_a_kicked_run_is_in_flight_a_registration_reads_the_kick_and_writes_nothing(world):
    # DynamoDB charges a conditional write it refuses: in a burst of 2,000 registrations a
    # minute, a write per registration to learn that a run is already asked for (issue 23).
    kicker = Kicker(world.store, RecordingTrigger(), clock=world.clock)
    assert kicker.kick() is True
    writes: list[str] = []
    put = world.store.put_record
    world.store.put_record = lambda *a, **k: writes.append("put") or put(*a, **k)  # type: ignore[method-assign]
    assert [kicker.kick() for _ in range(50)] == [False] * 50
    assert writes == []


def test_a_kick_that_never_ran_expires_so_the_next_registration_asks_again(world):
    trigger = RecordingTrigger()
    kicker = Kicker(world.store, trigger, clock=world.clock)
    assert kicker.kick() is True

    world.clock.advance(KICK_TTL - timedelta(seconds=1))
    assert kicker.kick() is False
    world.clock.advance(timedelta(seconds=2))
    assert kicker.kick() is True and trigger.starts == 2


def test_an_invoke_that_fails_releases_the_kick_and_never_fails_the_submission(world):
    failing = Kicker(world.store, RecordingTrigger(fail=True), clock=world.clock)
    assert failing.kick() is False

    working = RecordingTrigger()
    assert Kicker(world.store, working, clock=world.clock).kick() is True and working.starts == 1


def test_without_a_launcher_function_nothing_is_kicked_or_written(world):
    assert Kicker(world.store, None, clock=world.clock).kick() is False
    assert world.store.get_record("kick", "launcher") is None


def test_only_the_kick_event_is_a_kick():
    assert is_kick({"trainbot": "kick"})
    assert not is_kick({"detail-type": "Scheduled Event", "source": "aws.events"})
    assert not is_kick(None)


def _submissions(world, kicks: list[str]):
    from backend.services.presets import PresetBook
    from backend.services.submit import SubmitService

    return SubmitService(
        world.jobs,
        world.store,
        PresetBook(world.store, is_admin=lambda user: False),
        clock=world.clock,
        sweep_confirm_size=100,
        sweep_max_size=2000,
        on_queued=kicks.append,
    )


FIELDS = {
    "name": "bert",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
}


def test_a_submission_kicks_once_a_redelivery_not_at_all_and_a_sweep_once_for_all_its_jobs(world):
    from tests.unit.services.conftest import OWNER

    kicks: list[str] = []
    submissions = _submissions(world, kicks)

    first = submissions.submit(FIELDS, OWNER, token="t-1")
    submissions.submit(FIELDS, OWNER, token="t-1")  # Slack's retry of the same command
    assert kicks == [first.job.job_id]  # the kick names the job it is for

    outcome = submissions.sweep({**FIELDS, "hp.lr": "1e-5,3e-5,1e-4"}, OWNER, token="t-2")
    assert len(outcome.job_ids) == 3 and kicks[1:] == [outcome.job_ids[-1]]


def test_a_submission_kicks_the_launcher_before_its_change_goes_to_the_notifiers(world):
    """Start on submit does not wait for Slack: the launcher is asked for right after the
    registration, before the notifiers (whose posts Slack may pace) are handed the change."""
    from tests.unit.services.conftest import OWNER

    world.notifier.eager = True  # as the Slack card is: it is shown the new job right away
    seen_at_kick: list[int] = []
    submissions = _submissions(world, [])
    submissions._on_queued = lambda _job_id: seen_at_kick.append(len(world.notifier.sent))

    registered = submissions.submit(FIELDS, OWNER, token="t-1")

    assert seen_at_kick == [0]
    assert world.notifier.statuses(registered.job.job_id)  # and then the notifiers had it


def test_a_kicked_run_looks_again_only_for_a_job_that_may_not_show_in_the_queue_yet(world):
    """launcher.may_be_unseen: after an empty queue read, a kicked run waits a moment and reads
    again only if the job it was asked for is still New, unclaimed and not parked; a job an
    earlier run launched (or one the store cannot say) is judged as the words say."""
    launcher = world.launcher()
    job = world.submit("bert")
    assert launcher.may_be_unseen(job.job_id) is True  # registered, not launched yet
    assert launcher.may_be_unseen(None) is True  # an old kick that names no job
    assert launcher.may_be_unseen("nobody-0000") is True  # not readable (yet): look again

    launcher.run_tick()
    assert world.store.get(job.job_id).attempts
    assert launcher.may_be_unseen(job.job_id) is False  # an earlier run launched it

    world.instance_limits["ml.g5.xlarge"] = 0
    parked = world.submit("parked")
    world.launcher().run_tick()
    assert world.store.get(parked.job_id).parked_at is not None
    assert launcher.may_be_unseen(parked.job_id) is False  # seen and parked: its type has no room


def test_the_kick_event_names_the_job_and_an_event_without_one_is_still_a_kick(world):
    from backend.services.kick import kicked_for

    trigger = RecordingTrigger()
    assert Kicker(world.store, trigger, clock=world.clock).kick("bert-123") is True
    assert trigger.job_ids == ["bert-123"]
    assert kicked_for({"trainbot": "kick", "jobId": "bert-123"}) == "bert-123"
    assert kicked_for({"trainbot": "kick"}) is None and kicked_for({"trainbot": "kick", "jobId": 7}) is None


def test_the_launcher_tells_of_its_launches_without_waiting_for_a_rate_limit(world):
    """The launcher holds its one slot while it delivers "Launched": notifiers are told not to
    wait for a rate limit there (what would wait stays in the outbox); the bot's deliveries may."""
    from backend.ports import notify_may_wait
    from tests.conftest import job_args
    from tests.unit.services.conftest import OWNER

    seen: list[tuple[str, bool]] = []
    world.notifier.eager = True
    original = world.notifier.notify

    def notify(job, seq):
        seen.append((job.history[seq - 1].to_status.value, notify_may_wait()))
        original(job, seq)

    world.notifier.notify = notify
    world.jobs.submit(name="bert", job_args=job_args(), actor=OWNER)
    world.launcher().run_tick()

    assert ("New", True) in seen and ("Launched", False) in seen
    assert notify_may_wait() is True  # only within the launcher's delivery
