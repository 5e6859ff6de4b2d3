"""Mutation testing of the core rules: would the fast tests notice a broken rule?

Runs mutmut (pinned in pyproject's ``mutate`` extra; ``./dev mutate`` installs it) over the
domain (``backend/domain``), the launcher, the monitor, the job service, the authorization
checks, the DynamoDB store (conditional writes, outbox, usage), the budget and notify services
and the bot's request authenticity. Each group is judged by its own tests (``JUDGES``; the fast
unit tests unless it names more: the contract suite and the store tests on moto for the store,
the bot's authenticity e2e tests for the bot, the dispatcher over moto for notify). The configuration is ``[tool.mutmut]`` in
pyproject.toml: what is mutated, every judging test, and that logging lines are not mutated
(what a log line says is not a rule). Prints, per group and per module: mutants, killed,
timeouts, errors, survived, the score (real kills over all mutants: a timeout or an error is
reported, never credited), how long it took, and every survivor, timeout and error with its
one-line diff. Survivors judged equivalent (no test can tell them from the original; see
``EQUIVALENT``) are listed apart with the reason, and a second score leaves them out.

mutmut 3 mutates only code inside functions. Rules that live in module-level tables (the
status machine's ``ALLOWED``) and statements it does not delete are covered by ``--spot``: the
hand-written mutations of issue 17, each applied to a copy of the source and run against the
same tests; every one must be killed.

Not part of the default suite (minutes, not seconds). Usage::

    ./dev mutate                       # every group, one mutmut run per group
    ./dev mutate domain launcher       # some groups
    ./dev mutate --spot                # only the hand-written spot mutations
    ./dev mutate --report              # print the last run's results without running
    ./dev mutate dynamo --only 'backend.adapters.dynamo.usage.*'   # a subset of a group
    ./dev mutate dynamo --only 'backend.adapters.dynamo.jobs.*' --unchecked   # resume a run
    ./dev mutate notify --not-killed   # after adding tests: only what the last run left

Results stay in ``mutants/`` (git-ignored); mutmut reuses them for unchanged functions, but a
change to ``[tool.mutmut]`` in pyproject.toml (a judge added to the test selection) forgets every
result: run the groups again in full then.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each group mutates, as mutmut mutant-name globs (module, then x_<function> or
# xǁ<Class>ǁ<method>).
GROUPS: dict[str, list[str]] = {
    "domain": ["backend.domain.*"],
    "launcher": ["backend.services.launcher.*"],
    "monitor": ["backend.services.monitor.*"],
    "jobs": ["backend.services.jobs.*"],
    "authorization": [
        "backend.services.jobs.xǁJobServiceǁauthorize_change__mutmut_*",
        "backend.config.xǁSettingsǁis_allowed__mutmut_*",
        "backend.config.xǁSettingsǁis_admin__mutmut_*",
        "backend.services.presets.xǁPresetBookǁ_authorize__mutmut_*",
    ],
    # The DynamoDB store's decisions: conditional writes (jobs, batches, leases), the outbox,
    # the small records (conditional puts, marks, sweep tallies, the owners' fair-share clocks),
    # usage and reservations.
    "dynamo": [
        "backend.adapters.dynamo.jobs.*",
        "backend.adapters.dynamo.outbox.*",
        "backend.adapters.dynamo.records.*",
        "backend.adapters.dynamo.usage.*",
    ],
    "budget": ["backend.services.budget.*"],
    "notify": ["backend.services.notify.*"],
    "authenticity": ["bot.authenticity.*"],
}
# The tests that judge each group (path prefixes of pytest node ids); the default is the fast
# unit tests. [tool.mutmut]'s test selection is their union: mutmut records which tests reach
# which function, and tests/conftest.py deselects, while a mutant runs, every test outside its
# group's judges (TRAINBOT_MUTATION_JUDGES), so adding moto tests for one group does not slow
# the others.
# A judge starting with "-" drops the tests it prefixes: the store's two scale tests (5,000 and
# 2,000 jobs, over a minute together on a loaded machine) would run for every mutant of every
# function they pass through; what they check per mutant (queries read only what they return,
# batches of 25) the contract suite and the smaller store tests check too.
FAST_JUDGES = ["tests/unit/"]
JUDGES: dict[str, list[str]] = {
    "dynamo": [
        "tests/contract/",
        "tests/integration/test_store.py",
        "-tests/integration/test_store.py::test_due_and_active_queries_read_only_what_they_return_with_5000_finished_jobs",
        "-tests/integration/test_store.py::test_a_batch_of_2000_jobs_registers_every_one_and_a_repeat_writes_nothing",
        *FAST_JUDGES,
    ],
    "authenticity": ["tests/e2e/test_bot_authenticity.py", "tests/e2e/test_bot_unconfigured.py", *FAST_JUDGES],
    # The dispatcher's rules on the in-memory store, and the leases it takes on the real one
    # (a token DynamoDB refuses only shows there).
    "notify": ["tests/integration/test_notify_store.py", *FAST_JUDGES],
}
# The target: at least this score on each of these groups.
TARGET = 0.85
TARGET_GROUPS = ("domain", "launcher", "monitor", "jobs")

# Reasons shared by several equivalent survivors of the DynamoDB store.
_KEYWORD_CASE = 'DynamoDB reads expression keywords (SET, REMOVE, AND) in any case (moto too)'
_MESSAGE_ONLY = "message only: it goes to a log line; callers branch on the error's type, never its text (STYLE.md 7)"
_PROGRAMMING_ERROR_MESSAGE = 'the message of a programming error (update() given a status): no code reads it, and ValueError is raised either way'
_BATCH_GET_ANSWER = 'a BatchGetItem answer always holds Responses with every table asked (an empty list when nothing was found); one DynamoDB can process none of fails instead (moto too)'
_QUERY_ANSWER = 'a Query answer always holds Items (an empty list when nothing matches)'
_SAME_LENGTH_TAGS = 'the tags are made for len(missing): both lists always have the same length'
_JOB_ID_UNCHANGED = "JobId never differs between a job's read and its write, so the unchanged-attribute test skips it too"
_SAME_VALUE_AGAIN = "setting an unchanged attribute again stores the same value: only the request grows (DynamoDB bills an UpdateItem by the item's size, not by what it sets)"
_FREE_RETURN_VALUES = "the answer's Attributes are read only when the write took a lease; asking for them anyway costs no capacity"
_ACTIVE_PROJECTION = 'the Active index projects only its keys and ActiveUse: without the projection the query returns the same ids at the same read cost'
_PAGES_WITHIN_LIMIT = 'each page holds at most Limit ids and the loop stops at the first that reaches limit, so ids never outgrow it (a page stops short only at 1 MB: ~10,000 of these index entries)'
_KEY_WITHOUT_HASH_IS_A_JOB = "a key without '#' is never a record's (record keys are <kind>#<key>, refused unread above), so every item this line sees is a job carrying RecordType 'job'"

# Survivors judged equivalent: (mangled function, the original line, the mutated line, both
# stripped as in mutmut's diff) -> why no test can tell the mutant from the original. Keyed by
# the lines, not the mutant's number, so the list survives renumbering when other code in the
# function changes.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ('backend.domain.spec.x__request', 'knobs: dict[str, Any] = {"name": fields.get("name", "")}', 'knobs: dict[str, Any] = {"name": fields.get("name", None)}'): 'a missing name is reported as a problem before any JobSpec is built, so the default is never read',
    ('backend.domain.spec.x__request', 'knobs: dict[str, Any] = {"name": fields.get("name", "")}', 'knobs: dict[str, Any] = {"name": fields.get("name", )}'): 'a missing name is reported as a problem before any JobSpec is built, so the default is never read',
    ('backend.domain.spec.x__request', 'knobs: dict[str, Any] = {"name": fields.get("name", "")}', 'knobs: dict[str, Any] = {"name": fields.get("name", "XXXX")}'): 'a missing name is reported as a problem before any JobSpec is built, so the default is never read',
    ('backend.domain.spec.x_sweep_specs', 'base_name = fields.get("name", "")', 'base_name = fields.get("name", None)'): 'None and "" are both falsy: a nameless sweep makes nameless specs either way (refused for the name)',
    ('backend.domain.spec.x_sweep_specs', 'base_name = fields.get("name", "")', 'base_name = fields.get("name", )'): 'None and "" are both falsy: a nameless sweep makes nameless specs either way (refused for the name)',
    ('backend.domain.spec.x_sweep_specs', 'chosen = dict(zip(keys, combination, strict=True))', 'chosen = dict(zip(keys, combination, strict=None))'): 'keys and each combination come from the same grid, so they always have the same length',
    ('backend.domain.spec.x_sweep_specs', 'chosen = dict(zip(keys, combination, strict=True))', 'chosen = dict(zip(keys, combination, ))'): 'keys and each combination come from the same grid, so they always have the same length',
    ('backend.domain.spec.x_sweep_specs', 'chosen = dict(zip(keys, combination, strict=True))', 'chosen = dict(zip(keys, combination, strict=False))'): 'keys and each combination come from the same grid, so they always have the same length',
    ('backend.domain.spec.x_is_known_key', 'if key.startswith(prefix) and len(key) > len(prefix):', 'if key.startswith(prefix) and len(key) >= len(prefix):'): 'a key that is only the prefix leaves an empty rest, which neither name pattern matches ({1,…})',
    ('backend.domain.model.x_new_job', 'status=JobStatus.NEW,', ''): "JobStatus.NEW is Job.status's default",
    ('backend.domain.model.x_new_job', 'history=[HistoryEntry(seq=1, at=now, from_status=None, to_status=JobStatus.NEW, reason="submitted")],', 'history=[HistoryEntry(seq=1, at=now, to_status=JobStatus.NEW, reason="submitted")],'): "from_status=None is HistoryEntry's default",
    ('backend.domain.model.x_new_job_id', 'suffix = secrets.token_hex(8)', 'suffix = secrets.token_hex(None)'): 'the random suffix is reduced to 6 base-36 digits: any number of random bytes gives the same distribution of ids',
    ('backend.domain.model.x_new_job_id', 'suffix = secrets.token_hex(8)', 'suffix = secrets.token_hex(9)'): 'the random suffix is reduced to 6 base-36 digits: any number of random bytes gives the same distribution of ids',
    ('backend.domain.model.xǁJobArgsǁto_request', 'request.pop(optional_list, None)', 'request.pop(optional_list, )'): 'model_dump always holds InputDataConfig and Tags (list defaults), so pop never misses',
    ('backend.domain.policy.x_classify_failure_reason', 'def classify_failure_reason(reason: str, *, secondary_status: str = "") -> Classification:', 'def classify_failure_reason(reason: str, *, secondary_status: str = "XXXX") -> Classification:'): "no caller's secondary status is 'XXXX'; the default only stands for 'none given'",
    ('backend.domain.policy.x_classify_failure_reason', 'prefix = text.split(":", 1)[0].strip()', 'prefix = text.split(":", )[0].strip()'): "only the part before the first ':' is used, however often the rest is split",
    ('backend.domain.policy.x_classify_failure_reason', 'prefix = text.split(":", 1)[0].strip()', 'prefix = text.split(":", 2)[0].strip()'): "only the part before the first ':' is used, however often the rest is split",
    ('backend.domain.times.x_parse_utc', 'return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))', 'return to_utc(datetime.fromisoformat(text.replace("XXZXX", "+00:00")))'): "datetime.fromisoformat reads a trailing 'Z' itself since Python 3.11 (the oldest Trainbot runs on)",
    ('backend.domain.times.x_parse_utc', 'return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))', 'return to_utc(datetime.fromisoformat(text.replace("z", "+00:00")))'): "datetime.fromisoformat reads a trailing 'Z' itself since Python 3.11 (the oldest Trainbot runs on)",
    ('backend.services.monitor.xǁMonitorǁ_failed', 'secondary = "MaxRuntimeExceeded" if status.max_runtime_exceeded else "MaxWaitTimeExceeded" if status.max_wait_exceeded else ""', 'secondary = "MaxRuntimeExceeded" if status.max_runtime_exceeded else "MaxWaitTimeExceeded" if status.max_wait_exceeded else "XXXX"'): "any secondary status other than MaxRuntimeExceeded or MaxWaitTimeExceeded means 'none' to the classifier",
    ('backend.services.monitor.xǁMonitorǁsweep', 'last: str | None = None', 'last: str | None = ""'): 'a sweep that stops before its first job saves the head ("") as its cursor either way: "" is also what an unset last gives',
    ('backend.services.jobs.xǁJobServiceǁretry', 'lease=None, / )', ')'): 'no Failed or Stopped job holds a claim: every move to them clears it (tested), so clearing it again changes nothing',
    ('backend.services.launcher.xǁLauncherǁ_launch', 'self._finish(job, S.FAILED, f"gave up: {MAX_ATTEMPTS} attempts", report, attempts=job.attempts)', 'self._finish(job, S.FAILED, f"gave up: {MAX_ATTEMPTS} attempts", report, )'): "writing the job's own attempts back is the same as not writing them",
    ('backend.domain.model.x_slugify', 'slug = re.sub(r"-{2,}", "-", slug)[:max_len].strip("-")', 'slug = re.sub(r"XX-{2,}XX", "-", slug)[:max_len].strip("-")'): "the first substitution already turns every run of other characters into one '-', so there is never a '--' left to collapse",
    ('backend.domain.model.x_slugify', 'slug = re.sub(r"-{2,}", "-", slug)[:max_len].strip("-")', 'slug = re.sub(r"-{2,}", "XX-XX", slug)[:max_len].strip("-")'): "the first substitution already turns every run of other characters into one '-', so there is never a '--' left to collapse",
    (
        "bot.authenticity.x_lazy_refusal",
        'signature = (_headers(event.get("headers")) or {}).get(LAZY_SIGNATURE_HEADER, "")',
        'signature = (_headers(event.get("headers")) or {}).get(LAZY_SIGNATURE_HEADER, "XXXX")',
    ): "an absent signature must fail compare_digest: '' and 'XXXX' both do, as no HMAC is either ('v1=' + 64 hex)",
    (
        "bot.authenticity.x_lazy_refusal",
        "why, _, _, body, content_type = _unsigned(event, 0, allow_stale=True)",
        "why, _, _, body, content_type = _unsigned(event, None, allow_stale=True)",
    ): "with allow_stale=True _unsigned never reads now (the age test is skipped): a lazy event's age does not matter",
    (
        "bot.authenticity.x_lazy_refusal",
        "why, _, _, body, content_type = _unsigned(event, 0, allow_stale=True)",
        "why, _, _, body, content_type = _unsigned(event, 1, allow_stale=True)",
    ): "with allow_stale=True _unsigned never reads now (the age test is skipped): a lazy event's age does not matter",
    (
        "bot.authenticity.x__body",
        'return base64.b64decode(body, validate=True).decode("utf-8")',
        'return base64.b64decode(body, validate=True).decode("UTF-8")',
    ): "codec names are case-insensitive: 'UTF-8' is the same codec as 'utf-8'",
    (
        "bot.authenticity.x__body",
        'body.encode("utf-8")  # a lone surrogate cannot be signed, nor read by bolt',
        'body.encode("UTF-8")  # a lone surrogate cannot be signed, nor read by bolt',
    ): "codec names are case-insensitive: 'UTF-8' is the same codec as 'utf-8'",
    (
        "backend.services.notify.xǁDispatcherǁ_refresh_eagerly",
        'if getattr(notifier, "eager", False) and job.delivered.get(notifier.name, 0) < job.last_seq:',
        'if getattr(notifier, "eager", None) and job.delivered.get(notifier.name, 0) < job.last_seq:',
    ): "None and False are both falsy, and an eager notifier sets eager = True",
    ("backend.services.notify.xǁDispatcherǁrefresh", 'if getattr(notifier, "eager", False):', 'if getattr(notifier, "eager", None):'): "None and False are both falsy, and an eager notifier sets eager = True",
    ("backend.services.notify.xǁDispatcherǁ_send", "failed = False", "failed = None"): "at that line not all_done implies a notifier failed (every other path through the loop records each seq), and no caller reads _send's return",
    ("backend.services.notify.xǁDispatcherǁ_send", "failed = False", "failed = True"): "at that line not all_done implies a notifier failed (every other path through the loop records each seq), and no caller reads _send's return",
    (
        "backend.services.notify.xǁDispatcherǁ_send",
        "retry_at = notice.retry_due(current, self._clock()) if failed and not all_done else None",
        "retry_at = notice.retry_due(current, self._clock()) if failed or not all_done else None",
    ): "at that line not all_done implies a notifier failed (every other path through the loop records each seq), and no caller reads _send's return",
    (
        "backend.services.notify.xǁDispatcherǁ_send",
        "retry_at = notice.retry_due(current, self._clock()) if failed and not all_done else None",
        "retry_at = notice.retry_due(current, self._clock()) if (failed and not all_done) or True else None",
    ): "OutboxStore.finish_delivery reads retry_at only when not all_done (both stores), and there failed holds",
    ("backend.services.notify.xǁDispatcherǁ_lease_for_a_call", "held = False", "held = None"): "only its truth is read: None and False are both falsy",
    ('backend.services.notify.xǁDispatcherǁ__init__', 'self._asks_admins = any(getattr(n, "asks_admins", False) for n in self._notifiers)', 'self._asks_admins = any(getattr(n, "asks_admins", None) for n in self._notifiers)'): 'None and False are both falsy: a notifier without asks_admins cannot ask the admins either way',
    ('backend.services.notify.xǁDispatcherǁ_deliver', 'token = secrets.token_hex(8)', 'token = secrets.token_hex(None)'): 'a lease token only has to be unguessable and unique: 32 random bytes are as good as 8',
    ('backend.services.notify.xǁDispatcherǁ_deliver', 'token = secrets.token_hex(8)', 'token = secrets.token_hex(9)'): 'a lease token only has to be unguessable and unique: 9 random bytes are as good as 8',
    ("backend.services.notify.xǁDispatcherǁ_drain_one", "token = secrets.token_hex(8)", "token = secrets.token_hex(None)"): "a lease token only has to be unguessable and unique: 32 random bytes are as good as 8",
    ("backend.services.notify.xǁDispatcherǁ_drain_one", "token = secrets.token_hex(8)", "token = secrets.token_hex(9)"): "a lease token only has to be unguessable and unique: 9 random bytes are as good as 8",
    (
        "bot.authenticity.x__unsigned",
        'return None, timestamp, signature, body, headers.get("content-type", "")',
        'return None, timestamp, signature, body, headers.get("content-type", "XXXX")',
    ): "no content type and 'XXXX' both are not application/json: the body alone decides how it is read",
    (
        "backend.services.budget.xǁCostGuardǁadmit",
        "approval = Approval(state=ApprovalState.PENDING, reasons=[reason])",
        "approval = Approval(reasons=[reason])",
    ): "ApprovalState.PENDING is Approval.state's default",
    (
        "backend.services.budget.xǁCostGuardǁassess",
        "approval = Approval(state=ApprovalState.PENDING, reasons=reasons) if reasons else None",
        "approval = Approval(reasons=reasons) if reasons else None",
    ): "ApprovalState.PENDING is Approval.state's default",
    (
        "backend.services.budget.xǁBudgetsǁweek_of",
        "def week_of(self, team: str, week: str, asked_hours: float = 0.0) -> BudgetCheck:",
        "def week_of(self, team: str, week: str, asked_hours: float = 1.0) -> BudgetCheck:",
    ): "the one caller that leaves it out (used_hours) reads only used_hours, which asked_hours does not change",
    ("backend.services.budget.xǁApprovalsǁ_approve_one", "return Decision(job, changed=False)", "return Decision(job, changed=None)"): "approve() reads it only as a truth value and returns bool(released)",
    (
        "backend.services.budget.xǁBudgetsǁreserve",
        'return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, strict=True)]',
        'return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, strict=None)]',
    ): "one token is made per job, so jobs and tokens always have the same length",
    (
        "backend.services.budget.xǁBudgetsǁreserve",
        'return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, strict=True)]',
        'return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, )]',
    ): "one token is made per job, so jobs and tokens always have the same length",
    (
        "backend.services.budget.xǁBudgetsǁreserve",
        'return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, strict=True)]',
        'return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, strict=False)]',
    ): "one token is made per job, so jobs and tokens always have the same length",
    (
        "backend.adapters.dynamo.usage.x__refused",
        'return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"',
        'return exc.response.get("Error", None).get("Code") == "ConditionalCheckFailedException"',
    ): "botocore's ClientError always fills response['Error'] (it is built from it), so the default is never read",
    (
        "backend.adapters.dynamo.usage.x__refused",
        'return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"',
        'return exc.response.get("Error", ).get("Code") == "ConditionalCheckFailedException"',
    ): "botocore's ClientError always fills response['Error'] (it is built from it), so the default is never read",
    # backend/adapters/dynamo/jobs.py
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")', 'expression = "set " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")'): _KEYWORD_CASE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")', 'expression = "SET " + ", ".join(sets) + (" remove " + ", ".join(removes) if removes else "")'): _KEYWORD_CASE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'condition = "#status = :s AND #version = :v"', 'condition = "#status = :s and #version = :v"'): _KEYWORD_CASE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_take_over', 'UpdateExpression="SET #u = :until",', 'UpdateExpression="set #u = :until",'): _KEYWORD_CASE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_take_over', 'ConditionExpression="#s = :registering AND " + ("#u = :held" if held is not None else "attribute_not_exists(#u)"),', 'ConditionExpression="#s = :registering and " + ("#u = :held" if held is not None else "attribute_not_exists(#u)"),'): _KEYWORD_CASE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁregister_many', 'UpdateExpression="SET #s = :done",', 'UpdateExpression="set #s = :done",'): _KEYWORD_CASE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'raise StoreUnavailable("DynamoDB kept keys unprocessed")', 'raise StoreUnavailable(None)'): _MESSAGE_ONLY,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'raise StoreUnavailable("DynamoDB kept keys unprocessed")', 'raise StoreUnavailable("XXDynamoDB kept keys unprocessedXX")'): _MESSAGE_ONLY,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'raise StoreUnavailable("DynamoDB kept keys unprocessed")', 'raise StoreUnavailable("dynamodb kept keys unprocessed")'): _MESSAGE_ONLY,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'raise StoreUnavailable("DynamoDB kept keys unprocessed")', 'raise StoreUnavailable("DYNAMODB KEPT KEYS UNPROCESSED")'): _MESSAGE_ONLY,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_put', 'raise StoreUnavailable(f"DynamoDB kept {len(requests.get(self._table, []))} items unprocessed")', 'raise StoreUnavailable(None)'): _MESSAGE_ONLY,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁregister_many', 'raise DuplicateBatch(f"batch {batch_id} was registered with other jobs") from None', 'raise DuplicateBatch(None) from None'): _MESSAGE_ONLY,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁupdate', 'raise ValueError("status changes go through transition()")', 'raise ValueError(None)'): _PROGRAMMING_ERROR_MESSAGE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁupdate', 'raise ValueError("status changes go through transition()")', 'raise ValueError("XXstatus changes go through transition()XX")'): _PROGRAMMING_ERROR_MESSAGE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁupdate', 'raise ValueError("status changes go through transition()")', 'raise ValueError("STATUS CHANGES GO THROUGH TRANSITION()")'): _PROGRAMMING_ERROR_MESSAGE,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'for item in answer.get("Responses", {}).get(self._table, []):', 'for item in answer.get("Responses", {}).get(self._table, None):'): _BATCH_GET_ANSWER,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'for item in answer.get("Responses", {}).get(self._table, []):', 'for item in answer.get("Responses", {}).get(self._table, ):'): _BATCH_GET_ANSWER,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'for item in answer.get("Responses", {}).get(self._table, []):', 'for item in answer.get("Responses", None).get(self._table, []):'): _BATCH_GET_ANSWER,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_batch_get', 'for item in answer.get("Responses", {}).get(self._table, []):', 'for item in answer.get("Responses", ).get(self._table, []):'): _BATCH_GET_ANSWER,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁactive_jobs', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", None))'): _QUERY_ANSWER,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁactive_jobs', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", ))'): _QUERY_ANSWER,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁregister_many', 'tagged = [job.model_copy(update={"queue_tag": tag}) for job, tag in zip(missing, tags, strict=True)]', 'tagged = [job.model_copy(update={"queue_tag": tag}) for job, tag in zip(missing, tags, strict=None)]'): _SAME_LENGTH_TAGS,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁregister_many', 'tagged = [job.model_copy(update={"queue_tag": tag}) for job, tag in zip(missing, tags, strict=True)]', 'tagged = [job.model_copy(update={"queue_tag": tag}) for job, tag in zip(missing, tags, )]'): _SAME_LENGTH_TAGS,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁregister_many', 'tagged = [job.model_copy(update={"queue_tag": tag}) for job, tag in zip(missing, tags, strict=True)]', 'tagged = [job.model_copy(update={"queue_tag": tag}) for job, tag in zip(missing, tags, strict=False)]'): _SAME_LENGTH_TAGS,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'if attribute in WRITER_OWNED or attribute == "JobId":', 'if attribute in WRITER_OWNED or attribute == "XXJobIdXX":'): _JOB_ID_UNCHANGED,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'if attribute in WRITER_OWNED or attribute == "JobId":', 'if attribute in WRITER_OWNED or attribute == "jobid":'): _JOB_ID_UNCHANGED,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'if attribute in WRITER_OWNED or attribute == "JobId":', 'if attribute in WRITER_OWNED or attribute == "JOBID":'): _JOB_ID_UNCHANGED,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', 'if old_item.get(attribute) == value and attribute not in OUTBOX_KEYS:', 'if old_item.get(None) == value and attribute not in OUTBOX_KEYS:'): _SAME_VALUE_AGAIN,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁ_conditional_write', '**({"ReturnValues": "ALL_NEW"} if lease is not None else {}),', '**({"ReturnValues": "ALL_NEW"} if (lease is not None) or True else {}),'): _FREE_RETURN_VALUES,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁactive_jobs', 'ProjectionExpression="JobId",', ''): _ACTIVE_PROJECTION,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁactive_jobs', 'return self.get_many(ids[:limit] if limit is not None else ids)', 'return self.get_many(ids[:limit] if (limit is not None) and False else ids)'): _PAGES_WITHIN_LIMIT,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁactive_jobs', 'return self.get_many(ids[:limit] if limit is not None else ids)', 'return self.get_many(ids[:limit] if (limit is not None) or True else ids)'): _PAGES_WITHIN_LIMIT,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁactive_jobs', 'return self.get_many(ids[:limit] if limit is not None else ids)', 'return self.get_many(ids[:limit] if limit is None else ids)'): _PAGES_WITHIN_LIMIT,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", {}).get(None, RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", {}).get("S", None) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", {}).get("S", ) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get(None, {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", None).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", ).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("XXRecordTypeXX", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("recordtype", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RECORDTYPE", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", {}).get("XXSXX", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    ('backend.adapters.dynamo.jobs.xǁDynamoJobsǁget', 'if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:', 'if item is None or item.get("RecordType", {}).get("s", RecordKind.JOB.value) != RecordKind.JOB.value:'): _KEY_WITHOUT_HASH_IS_A_JOB,
    # backend/adapters/dynamo/outbox.py
    ('backend.adapters.dynamo.outbox.x_remember_lease', 'leases.popitem(last=False)', 'leases.popitem(last=None)'): "popitem reads last only for its truth: None pops the oldest, as False does",
    ('backend.adapters.dynamo.outbox.xǁDynamoOutboxǁoutbox_job_ids', 'values[":due"] = {"S": format_utc(due_by) + "#~"}', 'values[":due"] = {"S": format_utc(due_by) + "XX#~XX"}'): "an Outbox sort key is '<due>#<job id>': at the same due it meets the bound at its '#', and 'X' sorts above '#' as '~' does, so the same items are due",
    ('backend.adapters.dynamo.outbox.xǁDynamoOutboxǁoutbox_job_ids', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", None))'): _QUERY_ANSWER,
    ('backend.adapters.dynamo.outbox.xǁDynamoOutboxǁoutbox_job_ids', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))', 'ids.extend(item["JobId"]["S"] for item in answer.get("Items", ))'): _QUERY_ANSWER,
}

# What each mutmut exit code (mutmut.stats.status_by_exit_code) counts as here. Only a test that
# failed is a kill: a timeout or an error (a collection error makes pytest exit 2, which mutmut
# calls "check was interrupted by user"; 3 is pytest's internal error, which mutmut counts as
# killed; 255 is mutmut's fork server's os._exit(-1) when running the tests raised, which mutmut
# calls a timeout) is reported, never credited. "not checked" and "skipped" are not counted.
KILLED, TIMEOUT, ERROR, SURVIVED, NO_TESTS = "killed", "timeout", "error", "survived", "no tests"
OUTCOME_BY_EXIT_CODE: dict[int | None, str] = {
    1: KILLED,  # a test failed
    37: KILLED,  # caught by the type checker
    0: SURVIVED,
    5: NO_TESTS,  # pytest collected nothing
    33: NO_TESTS,  # no test reaches the function
    36: TIMEOUT,
    24: TIMEOUT,  # SIGXCPU
    -24: TIMEOUT,
    152: TIMEOUT,
    255: ERROR,  # the test run raised (mutmut 3.8.1's worker exits -1); its real timeout is SIGXCPU
    2: ERROR,  # interrupted: a collection error (or ^C)
    3: ERROR,  # pytest internal error
    35: ERROR,  # suspicious
    -11: ERROR,  # segfault
    -9: ERROR,  # killed by a signal
}
NOT_COUNTED: set[int | None] = {None, 34}  # not checked, skipped
COUNTED = (KILLED, TIMEOUT, ERROR, SURVIVED, NO_TESTS)


def outcome(exit_code: int | None) -> str | None:
    """The column a mutant's exit code counts in (any code not known is an error), or None."""
    if exit_code in NOT_COUNTED:
        return None
    return OUTCOME_BY_EXIT_CODE.get(exit_code, ERROR)

# The hand-written mutations of issue 17 that mutmut cannot make (module-level tables,
# deleted statements) or that the issue names: (file, original text, mutated text, what breaks).
SPOT_MUTATIONS: list[tuple[str, str, str, str]] = [
    (
        "backend/services/jobs.py",
        "            self.authorize_change(actor, job)\n            if job.status not in (S.FAILED, S.STOPPED):",
        "            if job.status not in (S.FAILED, S.STOPPED):",
        "retry() no longer checks who asks (a non-owner retries someone's job)",
    ),
    (
        "backend/services/jobs.py",
        "            self.authorize_change(actor, job)\n            now = self._clock()\n            who =",
        "            now = self._clock()\n            who =",
        "stop() no longer checks who asks",
    ),
    (
        "backend/services/launcher.py",
        "usage[instance_type] + count > limit:",
        "usage[instance_type] + count > limit + 1:",
        "the instance limit is off by one",
    ),
    (
        "backend/services/monitor.py",
        "            if cls in (F.CAPACITY, F.QUOTA):\n                wait = job.capacity_wait_since or now",
        "            if cls in (F.CAPACITY, F.QUOTA):\n                wait = None",
        "the run-time capacity wait never starts (a job losing capacity forever is never failed)",
    ),
    (
        "backend/services/monitor.py",
        "MISSING_GRACE = timedelta(minutes=10)",
        "MISSING_GRACE = timedelta(0)",
        "no grace before re-queuing a job SageMaker does not know yet",
    ),
    (
        "backend/services/monitor.py",
        "        if _stop_asked(job, ended):\n            # The user asked to stop; it failed first.",
        "        if False:\n            # The user asked to stop; it failed first.",
        "a job being stopped whose attempt fails is resubmitted",
    ),
    (
        "backend/domain/status.py",
        "S.STOPPING: frozenset({S.STOPPED, S.COMPLETED, S.FAILED, S.RETRYING}),",
        "S.STOPPING: frozenset({S.STOPPED, S.FAILED, S.RETRYING}),",
        "Stopping -> Completed dropped from the status table",
    ),
    (
        "backend/domain/status.py",
        "S.FAILED: frozenset({S.RETRYING}),",
        "S.FAILED: frozenset(),",
        "Failed -> Retrying dropped from the status table (no /train retry of a failed job)",
    ),
    (
        "backend/services/launcher.py",
        "                self._stop_orphan(attempt.name)\n",
        "                pass\n",
        "the launcher no longer stops the training job of a job stopped during its create",
    ),
    (
        "backend/services/monitor.py",
        "if attempt.outcome in (AttemptOutcome.COMPLETED, AttemptOutcome.FAILED, AttemptOutcome.STOPPED, AttemptOutcome.NOT_STARTED):",
        "if attempt.outcome in (AttemptOutcome.COMPLETED, AttemptOutcome.STOPPED, AttemptOutcome.NOT_STARTED):",
        "the duplicate-event guard ignores Failed (a repeated failure event is applied twice)",
    ),
    (
        "backend/domain/policy.py",
        "if job.algorithm_failures + 1 > job.retry_budget:",
        "if job.algorithm_failures + 1 > job.retry_budget + 1:",
        "the algorithm-error budget is off by one",
    ),
]
SPOT_TESTS = ["tests/unit/services", "tests/unit/test_policy.py", "tests/unit/test_status_machine.py"]


@dataclass
class Tally:
    counts: Counter  # outcome -> mutants
    survivors: list[str]  # survived or no tests, not judged equivalent: name, status, diff
    equivalent: list[tuple[str, str]]
    uncredited: list[str]  # timeouts and errors: name, mutmut's status, diff

    @property
    def total(self) -> int:
        return sum(self.counts[o] for o in COUNTED)

    @property
    def killed(self) -> int:
        return self.counts[KILLED]

    def score(self, *, without_equivalent: bool = False) -> float:
        """Real kills over all mutants counted (a timeout or an error is not a kill)."""
        total = self.total - (len(self.equivalent) if without_equivalent else 0)
        return self.killed / total if total else 1.0


def _python() -> str:
    return sys.executable


def _mutmut(*args: str, judges: list[str] | None = None) -> int:
    env = dict(os.environ)
    env.pop("TRAINBOT_MUTATION_JUDGES", None)
    if judges:
        env["TRAINBOT_MUTATION_JUDGES"] = " ".join(judges)
    return subprocess.call([_python(), "-m", "mutmut", *args], cwd=ROOT, env=env)


def _results() -> dict[str, tuple[int | None, str]]:
    """Every mutant mutmut has a result for: name -> (mutmut's exit code, the source file)."""
    found: dict[str, tuple[int | None, str]] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        source = str(meta.relative_to(ROOT / "mutants"))[: -len(".meta")]
        for name, code in data.get("exit_code_by_key", {}).items():
            found[name] = (code, source)
    return found


@functools.cache  # the group's tally and its module's both show a survivor's diff
def _diff_line(name: str, source: str) -> tuple[str, str]:
    """(the original line, the mutated line), stripped, from mutmut's diff of ``name``."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        diff = get_diff_for_mutant(name, path=source)
    finally:
        os.chdir(cwd)
    minus = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return (" / ".join(minus), " / ".join(plus))


def tally(
    patterns: list[str],
    results: dict[str, tuple[int | None, str]],
    diff: Callable[[str, str], tuple[str, str]] = _diff_line,
) -> Tally:
    """Count the mutants matching ``patterns`` by outcome; list what was not killed with its
    diff (``diff(name, source)`` -> (original line, mutated line))."""
    counts: Counter = Counter()
    survivors: list[str] = []
    equivalent: list[tuple[str, str]] = []
    uncredited: list[str] = []
    for name, (code, source) in sorted(results.items()):
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        result = outcome(code)
        if result is None:
            continue
        counts[result] += 1
        if result == KILLED:
            continue
        old, new = diff(name, source)
        shown = f"{name} [{result}, exit {code}]\n        - {old}\n        + {new}"
        if result in (TIMEOUT, ERROR):
            uncredited.append(shown)
            continue
        why = EQUIVALENT.get((name.partition("__mutmut_")[0], old, new))
        if why is not None:
            equivalent.append((name, why))
            continue
        survivors.append(shown)
    return Tally(counts, survivors, equivalent, uncredited)


def module_tallies(
    groups: list[str],
    patterns_of: dict[str, list[str]],
    results: dict[str, tuple[int | None, str]],
    diff: Callable[[str, str], tuple[str, str]] = _diff_line,
) -> list[tuple[str, Tally]]:
    """Each module's tally over the mutants of ``groups`` it holds, by module name."""
    by_module: dict[str, dict[str, tuple[int | None, str]]] = {}
    for name, result in results.items():
        if any(fnmatch.fnmatchcase(name, p) for g in groups for p in patterns_of[g]):
            by_module.setdefault(name.split(".x_")[0].split(".xǁ")[0], {})[name] = result
    return [(module, tally(["*"], mine, diff)) for module, mine in sorted(by_module.items())]


def report(groups: list[str], timings: dict[str, float], *, show_survivors: bool = True, only: list[str] | None = None) -> bool:
    results = _results()
    patterns_of = {group: only or GROUPS[group] for group in groups}
    if only:
        print(f"only the mutants matching {' '.join(only)}")
    ok = True
    print()
    print(
        f"{'group':<14} {'mutants':>8} {'killed':>7} {'timeouts':>9} {'errors':>7} {'survived':>9} {'no tests':>9} "
        f"{'equiv.':>7} {'score':>7} {'w/o eq.':>8} {'time':>8}"
    )
    details: list[tuple[str, Tally]] = []
    for group in groups:
        t = tally(patterns_of[group], results)
        details.append((group, t))
        took = f"{timings[group]:.0f} s" if group in timings else "-"
        print(
            f"{group:<14} {t.total:>8} {t.killed:>7} {t.counts[TIMEOUT]:>9} {t.counts[ERROR]:>7} {t.counts[SURVIVED]:>9} "
            f"{t.counts[NO_TESTS]:>9} {len(t.equivalent):>7} {t.score():>7.1%} {t.score(without_equivalent=True):>8.1%} {took:>8}"
        )
        if group in TARGET_GROUPS and t.score(without_equivalent=True) < TARGET:
            ok = False
    if timings:
        print(f"total time: {sum(timings.values()):.0f} s")
    # Per module, so a weak file stands out: the same columns, from the same tally.
    print()
    print(f"  {'module':<36} {'mutants':>8} {'killed':>7} {'timeouts':>9} {'errors':>7} {'survived':>9} {'equiv.':>7} {'score':>7} {'w/o eq.':>8}")
    for module, t in module_tallies(groups, patterns_of, results):
        print(
            f"  {module:<36} {t.total:>8} {t.killed:>7} {t.counts[TIMEOUT]:>9} {t.counts[ERROR]:>7} "
            f"{t.counts[SURVIVED] + t.counts[NO_TESTS]:>9} {len(t.equivalent):>7} {t.score():>7.1%} {t.score(without_equivalent=True):>8.1%}"
        )
    if show_survivors:
        for group, t in details:
            if t.uncredited:
                print(f"\n{group}: {len(t.uncredited)} timeouts or errors (reported, not counted as killed)")
                for line in t.uncredited:
                    print(f"  {line}")
            if t.survivors:
                print(f"\n{group}: {len(t.survivors)} survivors")
                for line in t.survivors:
                    print(f"  {line}")
            if t.equivalent:
                print(f"\n{group}: {len(t.equivalent)} judged equivalent")
                for name, why in t.equivalent:
                    print(f"  {name}: {why}")
    print()
    print(f"target {TARGET:.0%} on {', '.join(TARGET_GROUPS)}: {'met' if ok else 'NOT met'}")
    return ok


def narrowed(patterns: list[str], results: dict[str, tuple[int | None, str]], which: str) -> list[str]:
    """The mutants of ``patterns`` to run again: ``unchecked`` ones (no result yet: an
    interrupted run, or a function changed since) or those ``not-killed`` (after tests were
    added: a kill stands, since a new test cannot bring a killed mutant back). mutmut runs every
    mutant it is named, so naming only these is what spares the rest. Read from the last
    results: a function edited since gets new mutants only when mutmut next generates them
    (in that run), so after editing code run ``--unchecked`` once more."""
    wanted = {"unchecked": lambda code: code is None, "not-killed": lambda code: code is not None and outcome(code) not in (KILLED, None)}[which]
    return sorted(
        name for name, (code, _source) in results.items() if wanted(code) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    )


def run_groups(
    groups: list[str], max_children: int | None, only: list[str] | None = None, which: str | None = None
) -> dict[str, float]:
    timings: dict[str, float] = {}
    extra = ["--max-children", str(max_children)] if max_children else []
    for group in groups:
        names = only or GROUPS[group]
        if which is not None:
            names = narrowed(names, _results(), which)
            print(f"==> {len(names)} {which} mutants of {group}", flush=True)
            if not names:
                continue
        print(f"==> mutmut run: {group}", flush=True)
        started = time.monotonic()
        code = _mutmut("run", *extra, *names, judges=JUDGES.get(group, FAST_JUDGES))
        timings[group] = time.monotonic() - started
        if code != 0:
            print(f"mutmut run failed for {group} (exit {code})", file=sys.stderr)
            sys.exit(code)
    return timings


def run_spot() -> bool:
    """Apply each hand-written mutation to a copy of the source; the unit tests must fail."""
    print("==> spot mutations (issue 17), each against " + " ".join(SPOT_TESTS))
    survived = 0
    with tempfile.TemporaryDirectory(prefix="trainbot-spot-") as tmp:
        copy = Path(tmp)
        for part in ("backend", "bot", "infra", "tests", "docs"):
            shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        for part in ("template.yaml", "README.md", "pyproject.toml"):
            shutil.copy(ROOT / part, copy / part)
        for path, original, mutated, what in SPOT_MUTATIONS:
            target = copy / path
            source = (ROOT / path).read_text(encoding="utf-8")
            if source.count(original) != 1:
                print(f"  ?  {what}: the original text is not (once) in {path}; update SPOT_MUTATIONS")
                survived += 1
                continue
            target.write_text(source.replace(original, mutated), encoding="utf-8")
            started = time.monotonic()
            run = subprocess.run(
                [_python(), "-m", "pytest", "-x", "-q", "-rf", "-o", "addopts=", "-p", "no:cacheprovider", *SPOT_TESTS],
                cwd=copy,
                capture_output=True,
                text=True,
            )
            target.write_text(source, encoding="utf-8")
            killed = run.returncode != 0
            survived += not killed
            print(f"  {'killed  ' if killed else 'SURVIVED'} {what} ({time.monotonic() - started:.0f} s)")
            for line in run.stdout.splitlines():
                if line.startswith(("FAILED ", "ERROR ")):
                    print(f"           by {line.split(' ', 1)[1].split(' - ')[0]}")
    print(f"spot mutations: {len(SPOT_MUTATIONS) - survived}/{len(SPOT_MUTATIONS)} killed")
    return survived == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"groups to run: {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--spot", action="store_true", help="run only the hand-written spot mutations")
    parser.add_argument("--report", action="store_true", help="print the last results without running")
    parser.add_argument("--max-children", type=int, default=None, help="parallel mutants (mutmut's default: CPUs)")
    parser.add_argument("--no-survivors", action="store_true", help="print the table only")
    parser.add_argument(
        "--unchecked", action="store_true", help="run only the mutants with no result yet (resume an interrupted run)"
    )
    parser.add_argument(
        "--not-killed",
        action="store_true",
        help="run again only the mutants the last run did not kill (after adding tests; a kill stands)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="GLOB",
        help="a subset of one group's mutants (mutant-name glob, e.g. 'backend.adapters.dynamo.usage.*'); repeatable",
    )
    args = parser.parse_args()
    try:
        import mutmut  # noqa: F401
    except ImportError:
        sys.exit("mutmut is not installed: run ./dev mutate (it installs the 'mutate' extra)")
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    if args.spot:
        sys.exit(0 if run_spot() else 1)
    groups = args.groups or list(GROUPS)
    if args.only and len(groups) != 1:
        parser.error("--only narrows one group: name it")
    if args.unchecked and args.not_killed:
        parser.error("--unchecked and --not-killed: choose one")
    which = "unchecked" if args.unchecked else "not-killed" if args.not_killed else None
    timings = {} if args.report else run_groups(groups, args.max_children, args.only, which)
    ok = report(groups, timings, show_survivors=not args.no_survivors, only=args.only)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
