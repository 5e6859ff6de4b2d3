"""Schedules for the simulator, as Hypothesis strategies: lists of steps that shrink to the
shortest schedule that still breaks an invariant. A step is a plain tuple, so a failing
schedule prints as Python that a regression test pastes as it is."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.sim.sagemaker import OUTCOMES
from tests.sim.world import OUTAGES

_job = st.integers(min_value=0, max_value=7)
_user = st.sampled_from(["stop", "retry", "approve", "reject", "stop-sweep"])
# How a user's move reaches Trainbot when the world runs through the bot (tests/sim/bot.py): a
# command by id or by name, a card's button, another user's (refused), Slack's redelivery,
# Lambda running the lazy part twice, or killing it after its first write (and running it again).
# Direct worlds read only "other" (and "outsider": nothing).
_via = st.sampled_from(["command", "command", "name", "button", "button", "other", "again", "twice", "killed"])
# A command that only reads, from its owner or another user (reading is not refused).
_look_via = st.sampled_from(["command", "command", "other", "again", "twice", "killed"])
_submit_via = st.sampled_from(["command", "command", "command", "again", "twice", "killed", "outsider"])
_inside = st.sampled_from(["stop", "retry", "approve", "reject", "stop+retry", "stop-sweep", "launcher", "drain"])
fault = st.one_of(
    st.sampled_from(["ok", "ok", "ok", "throttle", "lost", "crash", "crash_after", "slow"]),
    st.tuples(st.sampled_from(["user", "user", "slow"]), _inside, _job),
)
faults = st.lists(fault, max_size=6).map(tuple)

step = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(["single", "single", "fallback", "spot", "held", "too_big"]), _submit_via),
    st.tuples(st.just("sweep"), st.integers(min_value=2, max_value=4), st.sampled_from(["single", "single", "held"]), _submit_via),
    st.tuples(_user, _job, _via),
    st.tuples(st.just("look"), st.sampled_from(["list", "status", "status", "queue", "stats", "budget", "plans", "help"]), _job, _look_via),
    st.tuples(st.just("launcher"), faults),
    st.tuples(st.just("launchers2"), faults),
    st.tuples(st.just("monitor"), faults),
    st.tuples(st.just("event"), st.integers(min_value=0, max_value=3), faults),
    st.tuples(st.just("replay"), st.integers(min_value=0, max_value=20)),
    st.tuples(st.just("sagemaker"), _job, st.sampled_from(OUTCOMES)),
    st.tuples(st.just("wait"), st.sampled_from([30, 90, 400, 3700])),
    st.tuples(st.just("budget"), st.sampled_from([0, 1, 2, 6, 20])),
    st.tuples(st.just("outage"), st.sampled_from(sorted(OUTAGES))),
)
schedules = st.lists(step, min_size=1, max_size=40)
# Whether a schedule's users go through the bot: a quarter of the schedules (the bot's requests
# cost about as much again as the services they reach; README, "Simulation").
through_bot = st.sampled_from([False, False, False, True])
