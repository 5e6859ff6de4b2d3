"""`trainbot status` of a queued job says why it waits, as `/train status` does."""

from __future__ import annotations

import json

from tests.integration.test_cli import cli


def test_status_of_a_queued_job_shows_its_place_in_the_queue_and_fair_share(aws, spec):
    first = json.loads(cli("submit", "--spec", spec(), "--json", user="alice")[1])["job_id"]
    second = json.loads(cli("submit", "--spec", spec(), "--json", user="alice")[1])["job_id"]

    code, out, _ = cli("status", second)

    assert code == 0 and first != second
    assert "waiting: #2 of 2 queued at priority 5" in out
    assert "fair share: 0 of other people's jobs and 1 of its owner's own are ahead" in out
