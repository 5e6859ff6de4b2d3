"""The kinds of small non-job records the job table holds, keyed ``<kind>#<key>``.

One place names them all; since :class:`RecordKind` is a StrEnum, a caller passing the bare
string still works, and ``f"{kind}#{key}"`` is the item's JobId (``#`` never occurs in a job id).
"""

from __future__ import annotations

from enum import StrEnum


class RecordKind(StrEnum):
    """What a ``<kind>#<key>`` record is; also its ``RecordType`` attribute (jobs carry ``job``)."""

    JOB = "job"  # the RecordType of job items (not a record kind: jobs are keyed by JobId alone)
    OWNER = "owner"  # an owner's fair-share clock (NextTag), key: Owner.key
    SWEEP = "sweep"  # a registered sweep batch: IdStem and Size (or JobIds: backend.domain.sweeps), State, Until (its writer's lease), Registered, FirstTag, OwnerKey, CreatedAt; key: sweep id
    SWEEP_ROOT = "sweep-root"  # a sweep's Slack summary message, key: sweep id
    SWEEP_ENDS = "sweep-ends"  # a sweep's ended jobs as Slack counts them (small: not the batch), key: sweep id
    PENDING_SWEEP = "pending-sweep"  # a large sweep parked until its owner confirms it
    TALLIED = "tallied"  # marker: one sweep job's outcome was counted once (expires)
    PRESET = "preset"  # a named set of job fields, key: preset name
    PRESET_INDEX = "preset-index"  # the names of all presets (one map), key: "all"
    CURSOR = "cursor"  # where the monitor's sweep of the active jobs goes on next run, key: "monitor-sweep"
    HOLDS = "holds"  # instance types the launcher holds back (quota/capacity), key: "instance-types"
    USAGE = "usage"  # a team's billed instance-seconds in one ISO week (Seconds), key: "<team>#<week>"
    COUNTED = "counted"  # marker: one attempt's billed time was added to its team's week (expires), key: attempt name
    PRICES = "prices"  # list prices fetched daily from AWS's Price List API (List.latest: On, Prices), key: region
    KICK = "kick"  # a start-on-submit launcher invocation is in flight (Until), key: "launcher"
    APPROVAL = "approval"  # which admins were sent a held job's approval card (Told:<admin> marks, expires), key: "<job id>#<seq>"
    PLANS = "plans"  # training plans as the launcher last read them (backend.services.plans), key: "board"
    CHART = "chart"  # a stats chart request was taken by the chart function (expires), key: the request's key
    STATS = "stats"  # the stats rollup (backend.services.rollup): "cursor", "ends#<slice>[#<chunk>]", "<scope>#<day>" tallies, "created#<day>"
