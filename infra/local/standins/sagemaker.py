"""A local stand-in for the SageMaker training-job API, served over HTTP.

Why this exists
---------------
moto's SageMaker backend completes a training job the moment it is created, has no
StopTrainingJob and accepts two jobs with the same name. Trainbot's retry and recovery
logic depends on exactly the behaviour moto leaves out: jobs that take time, stop
asynchronously, fail in several ways, name collisions, account limits and flaky
responses. This module speaks just enough of the real wire protocol for boto3's
unmodified ``sagemaker`` client, so the production code path can be tested end to end::

    with SageMakerStandIn(clock=FakeClock()) as standin:
        client = boto3.client("sagemaker", **standin.client_kwargs())
        # or: monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", standin.url)

It is used by lifecycle tests, chaos tests, the benchmark and the local "run it on my
laptop" mode. It relies on the standard library only.

Protocol
--------
AWS JSON 1.1: ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and a JSON body.
Success is HTTP 200 with a JSON body. Client errors are HTTP 400 with
``{"__type": code, "message": ...}`` and an ``x-amzn-ErrorType`` header; server faults
are HTTP 500 ``InternalFailure`` or 503 ``ServiceUnavailable``. Times in responses are
epoch seconds (floats), which botocore turns into datetimes. SigV4 signatures are not
checked. Supported operations: CreateTrainingJob, DescribeTrainingJob, DescribeTrainingPlan and
ListTrainingPlans (training plans: infra/local/standins/sagemaker_plans.py),
StopTrainingJob and ListTrainingJobs.

Simulated time
--------------
Nothing runs in the background apart from the HTTP server thread. Every job has a
timeline fixed when it is created, and its state is worked out lazily from the
injected ``clock`` whenever something looks at it (a Describe, a List, a Create, which
must count running instances, ``poll()`` or ``drain_events()``). With a ``FakeClock``,
tests move time forward explicitly (``standin.advance(seconds)``); with the default
``time.time`` the jobs run in real time.

Job lifecycle::

    create -> InProgress/Starting            for startup_seconds
           -> InProgress/Training            for the run duration
           -> Completed/Completed            (or one of the failures below)
    stop   -> Stopping/Stopping              for stop_seconds
           -> Stopped/Stopped

Failures:

* ``CapacityError``: ends Failed/Failed at the end of Starting; the job never trains.
* ``AlgorithmError``: ends Failed/Failed halfway through the run.
* ``InternalServerError``: ends Failed/Failed at the end of Starting with FailureReason
  "InternalServerError: ..." (SageMaker failed the job on its side; retryable).
* ``MaxRuntimeExceeded``: when the run would last longer than
  ``StoppingCondition.MaxRuntimeInSeconds`` (counted from the start of Training), the
  job ends at that limit as SageMaker documents it: TrainingJobStatus **Stopped** with
  SecondaryStatus ``MaxRuntimeExceeded`` and no FailureReason.
* The end of its training plan: a job on a plan still running 30 minutes before the plan's end,
  when SageMaker starts terminating the plan's instances, goes Stopping then Stopped with
  SecondaryStatus ``Stopped`` and no FailureReason (infra/local/standins/sagemaker_plans.py).
* ``MaxWaitTimeExceeded`` (managed spot training only): when the job would not end within
  ``StoppingCondition.MaxWaitTimeInSeconds`` of its creation (waiting for spot capacity
  included), it ends then as Stopped with SecondaryStatus ``MaxWaitTimeExceeded``.

The SecondaryStatus values produced are Starting, Training, Completed, Failed,
MaxRuntimeExceeded, MaxWaitTimeExceeded, Stopping and Stopped. Downloading and Uploading are
never produced.
``BillableTimeInSeconds`` and ``TrainingTimeInSeconds`` appear once a job has ended.
Billable time is the rounded wall-clock time spent in Training, as AWS reports it (multiply by
InstanceCount for instance-seconds).
``ModelArtifacts`` appears only for Completed jobs. ``Tags`` are accepted but never
returned.

Hyperparameters that steer one job, so a local demo needs no code
----------------------------------------------------------------------
* ``trainbot_standin_duration``: run (Training) seconds, as a string such as ``"12.5"``.
  The default is ``default_duration_seconds``.
* ``trainbot_standin_outcome``: ``Completed`` | ``CapacityError`` | ``AlgorithmError`` |
  ``InternalServerError`` | ``MaxRuntimeExceeded``.
* ``trainbot_standin_outcome_attempts``: ``N``. The forced outcome applies only to the
  first N attempts of the job. Attempts are counted per job prefix: the name with a
  trailing ``-a<digits>`` removed, because attempt names look like ``<JobId>-a<n>``.
  Later attempts fall through to the probabilistic faults, and otherwise complete. For
  example ``{"trainbot_standin_outcome": "CapacityError",
  "trainbot_standin_outcome_attempts": "2"}`` fails twice with CapacityError and then
  completes.
* ``trainbot_standin_log``: the last lines a failing job writes to its log (lines separated by
  ``\n``; default: a short Python traceback). Written only with a ``logs_client`` (below).
* ``trainbot_standin_log_stall``: seconds into Training after which the job writes no more log
  lines (it keeps running): what a hung data loader looks like.

* ``trainbot_standin_metric_<name>``: the final value (a number) of the job's metric
  ``<name>`` (one of its ``AlgorithmSpecification.MetricDefinitions``); without it the value
  is drawn from the job's name, so a sweep's jobs differ.

Metrics
-------
As SageMaker documents it (SageMaker Developer Guide, *Define metrics and environment
variables*; API Reference, MetricDefinition and DescribeTrainingJob), a job's
``AlgorithmSpecification.MetricDefinitions`` (at most 40; ``Name`` 1-255 and ``Regex`` 1-500
characters) are regular expressions over its log, the value being the first group of a match.
The stand-in's training script writes ``<name>=<value>`` for every defined metric on each
progress line and on a last line when the run ends (a value moving towards its final one), and
applies each definition's regex to the lines of host 1 as they are written: Describe's
``FinalMetricDataList`` holds, for each metric that matched, the last match (``MetricName``,
``Value``, ``Timestamp``), during the run and after it: SageMaker reads a job's metrics from its
output as it runs, whether or not anyone reads its CloudWatch log, so the lines are parsed with
or without a ``logs_client`` (which only decides whether they are also written to CloudWatch).
A progress line comes every ``log_interval_seconds`` of Training (local mode: every 2 s).

``SpotInterrupted`` (an outcome, managed spot training only): the spot instances are reclaimed
halfway through the run (SecondaryStatus ``Interrupted``, as SageMaker documents it) and never
come back, so the job ends Stopped/MaxWaitTimeExceeded at its max wait.

CloudWatch Logs
---------------
With ``logs_client`` (a boto3 ``logs`` client: moto in tests and local mode) the stand-in writes
each job's log as SageMaker does: log group ``/aws/sagemaker/TrainingJobs``, one stream per host
named ``<training-job-name>/algo-<n>-<epoch seconds>``
(https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html; a sample is in
tests/fixtures/cloudwatch_training_job_logs.json). While a job trains every host writes a line
every ``log_interval_seconds`` of simulated time (written lazily, like everything else); a job
that ends Failed writes its scripted tail on host 1 and a last line on the others. Event
timestamps are the simulated clock's: CloudWatch (and moto) refuse events older than 14 days.

The order in which an outcome is chosen: ``Faults.script_outcome(name)``, then the
hyperparameters above, then ``Faults.capacity_error_probability`` /
``algorithm_error_probability``, then Completed.

Fault injection
---------------
The ``Faults`` object (``standin.faults``) can be changed at any time, from any thread.
It holds probabilities, drawn from the stand-in's seeded RNG, and scripted queues for
deterministic tests. See ``Faults`` for the knobs.

Events
------
Each change of (TrainingJobStatus, SecondaryStatus), including the initial
InProgress/Starting, produces an EventBridge event shaped like AWS's
"SageMaker Training Job State Change". Its ``detail`` holds the DescribeTrainingJob
fields as they were at that moment, with times as epoch milliseconds (ints), as AWS
sends them. Events pile up in an outbox: ``drain_events()`` brings every job up to
"now", then returns the outbox and empties it. ``on_event`` (optional) is called with
each delivered event, outside the stand-in's lock.

Invariants for tests
--------------------
``calls`` (Counter by operation), ``created_names`` (every successful create, in order)
and ``max_concurrent_attempts`` (for each job prefix, the largest number of its
attempts that were ever non-terminal at the same moment of simulated time).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime
import http.server
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from typing import Any

from infra.local.standins.sagemaker_plans import PlanDesk, PlanRefused, PlanUse

logger = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

# Hyperparameters that steer a single job (see module docstring).
HP_DURATION = "trainbot_standin_duration"
HP_OUTCOME = "trainbot_standin_outcome"
HP_OUTCOME_ATTEMPTS = "trainbot_standin_outcome_attempts"

# Outcomes a job can be scripted or forced to have.
COMPLETED = "Completed"
CAPACITY_ERROR = "CapacityError"
ALGORITHM_ERROR = "AlgorithmError"
INTERNAL_SERVER_ERROR = "InternalServerError"
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
MAX_WAIT_TIME_EXCEEDED = "MaxWaitTimeExceeded"
SPOT_INTERRUPTED = "SpotInterrupted"
OUTCOMES = (COMPLETED, CAPACITY_ERROR, ALGORITHM_ERROR, INTERNAL_SERVER_ERROR, MAX_RUNTIME_EXCEEDED, SPOT_INTERRUPTED)
HP_LOG = "trainbot_standin_log"
HP_LOG_STALL = "trainbot_standin_log_stall"
HP_METRIC_PREFIX = "trainbot_standin_metric_"
MAX_METRIC_DEFINITIONS = 40
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
DEFAULT_FAILURE_LOG = ("Traceback (most recent call last):\n"
                       '  File "/opt/ml/code/train.py", line 42, in <module>\n'
                       "    main()\n"
                       "RuntimeError: failure injected by the SageMaker stand-in")

# Error codes that can be injected into API calls.
RESOURCE_LIMIT_EXCEEDED = "ResourceLimitExceeded"
THROTTLING = "ThrottlingException"
INTERNAL_FAILURE = "InternalFailure"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
VALIDATION = "ValidationException"
# ListTrainingJobs' StatusEquals values (botocore's service model, TrainingJobStatus).
_LIST_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped", "Deleting")
# This is not an error code. The call takes effect, but the client receives a 500
# InternalFailure, as when a response is lost on the way back. Valid for Create and Stop.
LOST_RESPONSE = "LostResponse"
FAULT_CODES = (RESOURCE_LIMIT_EXCEEDED, THROTTLING, INTERNAL_FAILURE, SERVICE_UNAVAILABLE,
               VALIDATION, LOST_RESPONSE)

CAPACITY_ERROR_REASON = ("CapacityError: Unable to provision requested ML compute capacity. "
                         "Please retry using a different ML instance type.")
ALGORITHM_ERROR_REASON = ('AlgorithmError: ExecuteUserScriptError: ExitCode 1 ErrorMessage '
                          '"RuntimeError: failure injected by the SageMaker stand-in" '
                          'Command "/usr/local/bin/python train.py", exit code 1')
INTERNAL_SERVER_ERROR_REASON = "InternalServerError: We encountered an internal error. Please try again."
NOT_FOUND_MESSAGE = "Requested resource not found."

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})

# The name rule SageMaker enforces on the server. botocore does not check it on the client.
_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ROLE_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_S3_RE = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
_ATTEMPT_SUFFIX_RE = re.compile(r"-a\d+$")

# Optional CreateTrainingJob fields that Describe echoes back unchanged, as SageMaker does.
_ECHOED_FIELDS = ("InputDataConfig", "VpcConfig", "EnableNetworkIsolation",
                  "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
                  "CheckpointConfig", "DebugHookConfig", "ExperimentConfig",
                  "TensorBoardOutputConfig", "ProfilerConfig", "Environment",
                  "RetryStrategy", "RemoteDebugConfig", "InfraCheckConfig")
_TIME_FIELDS = ("CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime")


def job_prefix(name: str) -> str:
    """Return the job a training-job name belongs to: the name without a trailing ``-a<digits>``."""
    return _ATTEMPT_SUFFIX_RE.sub("", name)


def training_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:training-job/{name}"


class FakeClock:
    """A clock that only moves when told to, and is safe to read from the server thread."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime.datetime:
        """The same instant as an aware UTC datetime: Trainbot's clock in tests and benchmarks,
        so one clock moves both Trainbot and the stand-in."""
        return datetime.datetime.fromtimestamp(self(), tz=datetime.UTC)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a FakeClock never goes backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            if now < self._now:
                raise ValueError("a FakeClock never goes backwards")
            self._now = float(now)


@dataclasses.dataclass
class Faults:
    """Knobs for fault injection. Each can be changed at runtime.

    Probabilities are per call (or per job, for run outcomes) and are drawn from the
    stand-in's RNG, which is seeded. Scripted faults come before probabilities and are
    used up one at a time. A script for a given name comes before a script for any name
    (``name=None``).
    """

    # CreateTrainingJob: refused before anything happens.
    create_limit_exceeded_probability: float = 0.0   # 400 ResourceLimitExceeded
    create_throttle_probability: float = 0.0         # 400 ThrottlingException "Rate exceeded"
    create_internal_error_probability: float = 0.0   # 500 InternalFailure
    create_service_unavailable_probability: float = 0.0  # 503 ServiceUnavailable
    create_validation_error_probability: float = 0.0     # 400 ValidationException
    # CreateTrainingJob: the job IS created, but the client gets a 500 InternalFailure.
    lost_create_response_probability: float = 0.0
    # The outcome of each run, drawn once when the job is created.
    capacity_error_probability: float = 0.0    # Failed at the end of Starting
    algorithm_error_probability: float = 0.0   # Failed halfway through Training
    # DescribeTrainingJob.
    describe_throttle_probability: float = 0.0  # 400 ThrottlingException
    # Every call: real seconds to sleep before answering (outside the stand-in's lock).
    latency_seconds: float = 0.0
    # Events.
    duplicate_event_probability: float = 0.0  # the same event (same id) is delivered twice
    reorder_events: bool = False              # drain_events() shuffles each batch

    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False,
                                              repr=False, compare=False)
    # (operation, name or None) -> queue of codes
    _scripted_calls: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                              compare=False)
    # job name -> (outcome, duration seconds or None)
    _scripted_outcomes: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                                 compare=False)

    @classmethod
    def chaos_mix(cls) -> Faults:
        """Every create and describe fault at once, with duplicated and reordered events: the
        mix the chaos test and ``bench/lifecycle.py`` both run (so their figures compare)."""
        return cls(
            create_limit_exceeded_probability=0.05,
            create_throttle_probability=0.08,
            create_internal_error_probability=0.04,
            create_service_unavailable_probability=0.02,
            lost_create_response_probability=0.05,
            describe_throttle_probability=0.1,
            duplicate_event_probability=0.3,
            reorder_events=True,
        )

    def script_fault(self, operation: str, code: str, name: str | None = None,
                     times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` (for job ``name``, or any job when
        None) fail with ``code``, one of FAULT_CODES."""
        if code not in FAULT_CODES:
            raise ValueError(f"unknown fault code {code!r}; expected one of {FAULT_CODES}")
        if code == LOST_RESPONSE and operation not in ("CreateTrainingJob", "StopTrainingJob"):
            raise ValueError("LostResponse only makes sense for CreateTrainingJob/StopTrainingJob")
        with self._lock:
            queue = self._scripted_calls.setdefault((operation, name), collections.deque())
            queue.extend([code] * times)

    def script_create(self, name: str | None, code: str, times: int = 1) -> None:
        """The next create (of ``name``, or any create when None) fails with ``code``.
        ``LOST_RESPONSE`` creates the job and then answers with a 500."""
        self.script_fault("CreateTrainingJob", code, name, times)

    def script_describe(self, name: str | None, code: str, times: int = 1) -> None:
        self.script_fault("DescribeTrainingJob", code, name, times)

    def script_outcome(self, name: str, outcome: str,
                       duration_seconds: float | None = None) -> None:
        """Fix how the run of the job called ``name`` ends, and optionally how long it
        trains. This wins over hyperparameters and probabilities."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        with self._lock:
            self._scripted_outcomes[name] = (outcome, duration_seconds)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripted_calls.clear()
            self._scripted_outcomes.clear()

    def _pop_scripted(self, operation: str, name: str | None) -> str | None:
        with self._lock:
            for key in ((operation, name), (operation, None)):
                queue = self._scripted_calls.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _scripted_outcome(self, name: str) -> tuple[str, float | None] | None:
        with self._lock:
            return self._scripted_outcomes.get(name)


class ApiError(Exception):
    """An error the stand-in sends to the client in AWS JSON 1.1 shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _validation(message: str) -> ApiError:
    return ApiError(400, VALIDATION, message)


def _null_error(member: str) -> ApiError:
    return _validation(f"1 validation error detected: Value null at '{member}' failed to "
                       "satisfy constraint: Member must not be null")


@dataclasses.dataclass
class _Transition:
    at: float
    status: str
    secondary: str
    message: str
    failure_reason: str | None = None


@dataclasses.dataclass(eq=False)
class _Job:
    name: str
    arn: str
    prefix: str
    request: dict
    instance_type: str
    instance_count: int
    created_at: float
    outcome: str
    plan: collections.deque
    status: str = "InProgress"
    secondary: str = "Starting"
    failure_reason: str | None = None
    training_start: float | None = None
    training_end: float | None = None
    last_modified: float = 0.0
    transitions: list = dataclasses.field(default_factory=list)
    log_streams: list = dataclasses.field(default_factory=list)  # one per host, once Training
    logged_until: float = 0.0  # progress lines are written up to here
    log_stall_after: float | None = None  # seconds into Training after which no line comes
    log_tail: str = ""
    training_plan: str | None = None  # the plan it runs on (ResourceConfig.TrainingPlanArn)
    ready_at: float = 0.0  # when its plan's capacity is (or was) free for it
    duration: float = 0.0  # planned Training seconds (metric values move over it)
    metric_defs: list = dataclasses.field(default_factory=list)  # (name, compiled regex, final)
    metric_last: dict = dataclasses.field(default_factory=dict)  # name -> (value, at): last match

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Chaos tests and the benchmark open many connections at once. The default backlog
    # of 5 would refuse some of them.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], standin: SageMakerStandIn) -> None:
        self.standin = standin
        self.stopping = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise keep answering on their handler threads
        # after stop(). Shutting them down makes a stopped stand-in actually unreachable.
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.stopping:
            return  # connections that we cut ourselves during stop()
        logger.exception("SageMaker stand-in: error while serving %s", client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 lets botocore's connection pool reuse connections, which matters for the
    # 1,000-job benchmark. Every response therefore carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "SageMakerStandIn/1.0"
    timeout = 60  # idle keep-alive connections do not hold a thread forever
    # Headers and body leave in two writes. With Nagle's algorithm and the client's delayed
    # ACKs, every response would then wait about 40 ms.
    disable_nagle_algorithm = True

    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        status, payload, error_code = self.server.standin.handle(
            self.headers.get("X-Amz-Target", ""), body)
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_code:
            self.send_header("x-amzn-ErrorType", error_code)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("SageMaker stand-in: " + format, *args)


class SageMakerStandIn:
    """A SageMaker training-job API that runs in memory, with simulated time and faults.

    ``capacity`` maps an instance type to the number of instances the account may run at
    once. Types that are not listed are unlimited. A create that would go over the
    limit is refused with ResourceLimitExceeded. Jobs that are still running, including
    Stopping ones, count towards the limit.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 capacity: dict[str, int] | None = None,
                 default_duration_seconds: float = 30.0,
                 startup_seconds: float = 2.0,
                 stop_seconds: float = 2.0,
                 faults: Faults | None = None,
                 seed: int | None = 0,
                 on_event: Callable[[dict], Any] | None = None,
                 host: str = "127.0.0.1",
                 port: int = 0,
                 logs_client: Any = None,
                 log_interval_seconds: float = 60.0) -> None:
        self.clock = clock
        self.logs_client = logs_client
        self.log_interval_seconds = float(log_interval_seconds)
        self._log_group_ready = False
        self.capacity: dict[str, int] = dict(capacity or {})
        self.default_duration_seconds = float(default_duration_seconds)
        self.startup_seconds = float(startup_seconds)
        self.stop_seconds = float(stop_seconds)
        self.faults = faults if faults is not None else Faults()
        self.on_event = on_event
        self.host = host
        self.port = port

        # One re-entrant lock guards all job state, counters, the RNG and the outbox.
        # Calls are short, so one lock is simple and fast enough for 1,000 jobs.
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._jobs: dict[str, _Job] = {}
        self._active: dict[str, _Job] = {}  # non-terminal jobs: the only ones that can change
        self._running_instances: collections.Counter[str] = collections.Counter()
        self._active_by_prefix: collections.Counter[str] = collections.Counter()
        self._max_by_prefix: dict[str, int] = {}
        self._attempts_by_prefix: collections.Counter[str] = collections.Counter()
        self._calls: collections.Counter[str] = collections.Counter()
        self._created_names: list[str] = []
        self._outbox: list[dict] = []
        self._callback_queue: collections.deque[dict] = collections.deque()
        self._tls = threading.local()

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._operations: dict[str, Callable[[dict], dict]] = {
            "CreateTrainingJob": self._create_training_job,
            "DescribeTrainingJob": self._describe_training_job,
            "StopTrainingJob": self._stop_training_job,
            "ListTrainingJobs": self._list_training_jobs,
        }
        # Training plans (reserved capacity): infra.local.standins.sagemaker_plans.
        self.plans = PlanDesk()
        self._operations.update(self.plans.operations(self.clock, self._plan_uses, _validation,
                                                      lambda m: ApiError(400, "ResourceNotFound", m)))

    def _plan_uses(self) -> list[PlanUse]:
        """The active jobs on training plans: instances from ready_at until their end."""
        with self._lock:
            return [PlanUse(j.training_plan, j.instance_count, j.ready_at, j.plan[-1].at if j.plan else self.clock())
                    for j in self._active.values() if j.training_plan]

    # ----------------------------------------------------------------- server lifecycle

    def start(self, port: int | None = None) -> str:
        """Bind ``host`` on ``port`` (0 means an ephemeral port), serve on a daemon thread and
        return the base URL. After ``stop()``, ``start()`` binds the same port again, so a
        test can simulate an outage. Job state survives the restart."""
        if self._server is not None:
            raise RuntimeError("the SageMaker stand-in is already started")
        server = _Server((self.host, self.port if port is None else port), self)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sagemaker-standin-{self.port}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, cut open connections and close the listening socket, so the port
        is free again. Job state is kept. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.stopping = True
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SageMakerStandIn:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the SageMaker stand-in is not started")
        return f"http://{self.host}:{self.port}"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("sagemaker", **kwargs)`` that point at the
        stand-in, with dummy credentials."""
        return {"endpoint_url": self.url, "region_name": REGION,
                "aws_access_key_id": "standin", "aws_secret_access_key": "standin"}

    # ------------------------------------------------------------------ test helpers

    def poll(self) -> int:
        """Bring every job up to the clock's "now" and emit the events that follow.
        Return how many status changes happened."""
        with self._lock:
            emitted = self._advance_all(self.clock())
        self._deliver_callbacks()
        return emitted

    def advance(self, seconds: float) -> int:
        """Move the FakeClock forward by ``seconds``, then ``poll()``. Only works with a
        clock that has ``advance``."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("advance() needs a clock with an advance() method, e.g. FakeClock")
        advance(seconds)
        return self.poll()

    def drain_events(self) -> list[dict]:
        """``poll()``, then return every event emitted so far and empty the outbox. With
        ``faults.reorder_events`` set, the batch is shuffled."""
        self.poll()
        with self._lock:
            batch, self._outbox = self._outbox, []
            if self.faults.reorder_events:
                self._rng.shuffle(batch)
        return batch

    def describe_job(self, name: str) -> dict | None:
        """What DescribeTrainingJob would return now (times as epoch seconds). None if the
        job does not exist. Calls, faults and latency do not apply."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                return None
            self._advance_job(job, self.clock())
            result = self._describe(job)
        self._deliver_callbacks()
        return result

    def next_change_at(self, name: str) -> float | None:
        """When job ``name``'s next planned status change is due (on the stand-in's clock);
        None when nothing more is planned for it (ended, or no such job). A waiting test knows
        this way whether SageMaker's side still has something coming."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                return None
            self._advance_job(job, self.clock())
            at = job.plan[0].at if job.plan else None
        self._deliver_callbacks()
        return at

    def job_names(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def running_instances(self, instance_type: str) -> int:
        """How many instances of ``instance_type`` the jobs that are still running hold now."""
        with self._lock:
            self._advance_all(self.clock())
            count = self._running_instances[instance_type]
        self._deliver_callbacks()
        return count

    def set_faults(self, **changes: Any) -> None:
        """Change several Faults fields at once. Unknown names are an error."""
        known = {f.name for f in dataclasses.fields(Faults) if f.init}
        unknown = set(changes) - known
        if unknown:
            raise AttributeError(f"unknown Faults fields: {sorted(unknown)}")
        with self.faults._lock:
            for key, value in changes.items():
                setattr(self.faults, key, value)

    def script_create(self, name: str | None, code: str, times: int = 1) -> None:
        self.faults.script_create(name, code, times)

    def script_describe(self, name: str | None, code: str, times: int = 1) -> None:
        self.faults.script_describe(name, code, times)

    def script_outcome(self, name: str, outcome: str,
                       duration_seconds: float | None = None) -> None:
        self.faults.script_outcome(name, outcome, duration_seconds)

    @property
    def calls(self) -> collections.Counter[str]:
        """A copy of the Counter of API calls by operation name. Calls that failed count too."""
        with self._lock:
            return collections.Counter(self._calls)

    @property
    def created_names(self) -> list[str]:
        """Every job that was created, in order, including creates whose response was lost."""
        with self._lock:
            return list(self._created_names)

    @property
    def max_concurrent_attempts(self) -> dict[str, int]:
        """For each job prefix, the most of its attempts that were non-terminal at once."""
        with self._lock:
            self._advance_all(self.clock())
            return dict(self._max_by_prefix)

    # ------------------------------------------------------------------ request entry

    def handle(self, target: str, body: bytes) -> tuple[int, dict, str | None]:
        """Serve one AWS JSON 1.1 request. Return (HTTP status, JSON payload, error code or None).
        The HTTP handler calls this. It is public so that it can be tested without sockets."""
        try:
            service, _, operation = target.partition(".")
            if service != "SageMaker" or not operation:
                raise ApiError(400, "UnknownOperationException",
                               f"Unknown X-Amz-Target {target!r}")
            try:
                params = json.loads(body.decode("utf-8")) if body else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(400, "SerializationException", f"Malformed JSON body: {exc}") from exc
            if not isinstance(params, dict):
                raise ApiError(400, "SerializationException", "The request body must be a JSON object")
            return 200, self._dispatch(operation, params), None
        except ApiError as err:
            return err.status, {"__type": err.code, "message": err.message}, err.code
        except Exception as exc:  # a bug in the stand-in must not hang or kill the client
            logger.exception("SageMaker stand-in: unexpected error")
            return 500, {"__type": INTERNAL_FAILURE, "message": f"stand-in bug: {exc!r}"}, INTERNAL_FAILURE
        finally:
            self._deliver_callbacks()

    def _dispatch(self, operation: str, params: dict) -> dict:
        with self._lock:
            self._calls[operation] += 1
        latency = self.faults.latency_seconds
        if latency > 0:
            time.sleep(latency)  # outside the lock: a slow response must not block others
        handler = self._operations.get(operation)
        if handler is None:
            raise ApiError(400, "UnknownOperationException",
                           f"Operation {operation} is not supported by the SageMaker stand-in")
        return handler(params)

    # ------------------------------------------------------------------ operations

    def _create_training_job(self, params: dict) -> dict:
        spec = self._validate_create(params)
        name = spec["name"]
        with self._lock:
            now = self.clock()
            fault = self._draw_fault("CreateTrainingJob", name, [
                (self.faults.create_throttle_probability, THROTTLING),
                (self.faults.create_service_unavailable_probability, SERVICE_UNAVAILABLE),
                (self.faults.create_internal_error_probability, INTERNAL_FAILURE),
                (self.faults.create_limit_exceeded_probability, RESOURCE_LIMIT_EXCEEDED),
                (self.faults.create_validation_error_probability, VALIDATION),
                (self.faults.lost_create_response_probability, LOST_RESPONSE),
            ])
            # Bring everything up to now first. Capacity and "attempts running at once" are
            # questions about this moment of simulated time.
            self._advance_all(now)
            if fault is not None and fault != LOST_RESPONSE:
                raise self._fault_error(fault, spec["instance_type"], spec["instance_count"])
            if name in self._jobs:
                raise ApiError(400, "ResourceInUse",
                               "Training job names must be unique within an AWS account and "
                               "region, and a training job with this name already exists "
                               f"({training_job_arn(name)})")
            plan_arn = params["ResourceConfig"].get("TrainingPlanArn")
            if plan_arn:
                # On a training plan: its reserved capacity, not the account's limits.
                try:
                    plan = self.plans.admit(plan_arn, spec["instance_type"], spec["instance_count"], now)
                except PlanRefused as refused:
                    raise _validation(str(refused)) from None
                spec["plan"] = plan.name
                spec["ready_at"] = self.plans.ready_at(plan, spec["instance_count"], self._plan_uses(), now)
                spec["plan_end"] = plan.end
                spec["plan_stops"] = plan.stops_jobs_at
            else:
                limit = self.capacity.get(spec["instance_type"])
                used = self._running_instances[spec["instance_type"]]
                if limit is not None and used + spec["instance_count"] > limit:
                    raise self._limit_error(spec["instance_type"], limit, used, spec["instance_count"])
            job = self._new_job(spec, params, now)
            if fault == LOST_RESPONSE:
                raise ApiError(500, INTERNAL_FAILURE,
                               "We encountered an internal error. Please try again.")
            return {"TrainingJobArn": job.arn}

    def _describe_training_job(self, params: dict) -> dict:
        name = params.get("TrainingJobName")
        if not isinstance(name, str) or not name:
            raise _null_error("trainingJobName")
        with self._lock:
            fault = self._draw_fault("DescribeTrainingJob", name, [
                (self.faults.describe_throttle_probability, THROTTLING)])
            if fault is not None:
                raise self._fault_error(fault, None, 0)
            job = self._jobs.get(name)
            if job is None:
                # Real SageMaker answers ValidationException, not ResourceNotFound, here.
                raise _validation(NOT_FOUND_MESSAGE)
            self._advance_job(job, self.clock())
            return self._describe(job)

    def _stop_training_job(self, params: dict) -> dict:
        name = params.get("TrainingJobName")
        if not isinstance(name, str) or not name:
            raise _null_error("trainingJobName")
        with self._lock:
            fault = self._draw_fault("StopTrainingJob", name, [])
            if fault is not None and fault != LOST_RESPONSE:
                raise self._fault_error(fault, None, 0)
            job = self._jobs.get(name)
            if job is None:
                raise _validation(NOT_FOUND_MESSAGE)
            now = self.clock()
            self._advance_job(job, now)
            if job.status != "InProgress":
                raise _validation("The request was rejected because the training job is in "
                                  f"status {job.status}.")
            # Whatever the job was going to do next is replaced by the stop.
            job.plan.clear()
            job.plan.append(_Transition(now, "Stopping", "Stopping", "Stopping the training job"))
            job.plan.append(_Transition(now + self.stop_seconds, "Stopped", "Stopped",
                                        "Training job stopped"))
            self._advance_job(job, now)
            if fault == LOST_RESPONSE:
                raise ApiError(500, INTERNAL_FAILURE,
                               "We encountered an internal error. Please try again.")
            return {}

    def _list_training_jobs(self, params: dict) -> dict:
        max_results = params.get("MaxResults", 10)
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise _validation(f"1 validation error detected: Value '{max_results}' at "
                              "'maxResults' failed to satisfy constraint: Member must have "
                              "value between 1 and 100")
        token = params.get("NextToken")
        try:
            offset = int(token) if token else 0
            if offset < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise _validation("Invalid pagination token") from None
        name_contains = params.get("NameContains")
        status_equals = params.get("StatusEquals")
        sort_by = params.get("SortBy", "CreationTime")
        sort_order = params.get("SortOrder", "Ascending")
        # botocore checks no enum: SageMaker does (its service model's value sets).
        for member, value, allowed in (("statusEquals", status_equals, _LIST_STATUSES),
                                       ("sortBy", sort_by, ("Name", "CreationTime", "Status")),
                                       ("sortOrder", sort_order, ("Ascending", "Descending"))):
            if value is not None and value not in allowed:
                raise _validation(f"1 validation error detected: Value '{value}' at '{member}' failed to "
                                  f"satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
        descending = sort_order == "Descending"
        after = params.get("CreationTimeAfter")
        before = params.get("CreationTimeBefore")
        with self._lock:
            fault = self._draw_fault("ListTrainingJobs", None, [])
            if fault is not None:
                raise self._fault_error(fault, None, 0)
            self._advance_all(self.clock())
            # StatusEquals filters the page of MaxResults jobs after it was taken, as the API
            # reference's note on ListTrainingJobs says: a page may hold fewer, even none.
            jobs = [j for j in self._jobs.values()
                    if (not name_contains or name_contains.lower() in j.name.lower())
                    and (after is None or j.created_at > after)
                    and (before is None or j.created_at < before)]
            key = {"Name": lambda j: j.name, "Status": lambda j: j.status}.get(
                sort_by, lambda j: j.created_at)
            jobs.sort(key=key, reverse=descending)  # sorted() is stable: creation order breaks ties
            page = jobs[offset:offset + max_results]
            summaries = []
            for job in page:
                if status_equals and job.status != status_equals:
                    continue
                summary = {"TrainingJobName": job.name, "TrainingJobArn": job.arn,
                           "CreationTime": job.created_at, "LastModifiedTime": job.last_modified,
                           "TrainingJobStatus": job.status, "SecondaryStatus": job.secondary}
                if job.training_end is not None:
                    summary["TrainingEndTime"] = job.training_end
                summaries.append(summary)
            result: dict[str, Any] = {"TrainingJobSummaries": summaries}
            if offset + max_results < len(jobs):
                result["NextToken"] = str(offset + max_results)
            return result

    # ------------------------------------------------------------------ create helpers

    def _validate_create(self, params: dict) -> dict:
        name = params.get("TrainingJobName")
        if not isinstance(name, str) or not name:
            raise _null_error("trainingJobName")
        if len(name) > 63:
            raise _validation(f"1 validation error detected: Value '{name}' at 'trainingJobName' "
                              "failed to satisfy constraint: Member must have length less than "
                              "or equal to 63")
        if not _NAME_RE.fullmatch(name):
            raise _validation(f"1 validation error detected: Value '{name}' at 'trainingJobName' "
                              "failed to satisfy constraint: Member must satisfy regular "
                              "expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
        algo = params.get("AlgorithmSpecification")
        if not isinstance(algo, dict):
            raise _null_error("algorithmSpecification")
        if not isinstance(algo.get("TrainingImage"), str) or not algo["TrainingImage"]:
            raise _validation("1 validation error detected: Value null at "
                              "'algorithmSpecification.trainingImage' failed to satisfy "
                              "constraint: Member must not be null (the SageMaker stand-in "
                              "supports TrainingImage only, not AlgorithmName)")
        role = params.get("RoleArn")
        if not isinstance(role, str) or not role:
            raise _null_error("roleArn")
        if not _ROLE_RE.fullmatch(role):
            raise _validation(f"1 validation error detected: Value '{role}' at 'roleArn' failed "
                              "to satisfy constraint: Member must satisfy regular expression "
                              f"pattern: {_ROLE_RE.pattern}")
        output = params.get("OutputDataConfig")
        if not isinstance(output, dict) or not isinstance(output.get("S3OutputPath"), str):
            raise _null_error("outputDataConfig.s3OutputPath")
        if not _S3_RE.fullmatch(output["S3OutputPath"]):
            raise _validation(f"1 validation error detected: Value '{output['S3OutputPath']}' at "
                              "'outputDataConfig.s3OutputPath' failed to satisfy constraint: "
                              "Member must satisfy regular expression pattern: "
                              f"{_S3_RE.pattern}")
        resources = params.get("ResourceConfig")
        if not isinstance(resources, dict):
            raise _null_error("resourceConfig")
        instance_type = resources.get("InstanceType")
        if not isinstance(instance_type, str) or not instance_type.startswith("ml."):
            raise _null_error("resourceConfig.instanceType") if instance_type is None else \
                _validation(f"Invalid instance type '{instance_type}'")
        count = resources.get("InstanceCount")
        if not isinstance(count, int) or count < 1:
            raise _null_error("resourceConfig.instanceCount") if count is None else \
                _validation("1 validation error detected: Value at 'resourceConfig.instanceCount' "
                            "failed to satisfy constraint: Member must have value greater than "
                            "or equal to 1")
        volume = resources.get("VolumeSizeInGB")
        if not isinstance(volume, int) or volume < 1:
            raise _null_error("resourceConfig.volumeSizeInGB") if volume is None else \
                _validation("1 validation error detected: Value at "
                            "'resourceConfig.volumeSizeInGB' failed to satisfy constraint: "
                            "Member must have value greater than or equal to 1")
        stopping = params.get("StoppingCondition")
        if not isinstance(stopping, dict):
            raise _null_error("stoppingCondition")
        max_runtime = stopping.get("MaxRuntimeInSeconds")
        if max_runtime is not None and (not isinstance(max_runtime, int) or max_runtime < 1):
            raise _validation("1 validation error detected: Value at "
                              "'stoppingCondition.maxRuntimeInSeconds' failed to satisfy "
                              "constraint: Member must have value greater than or equal to 1")
        if params.get("EnableManagedSpotTraining"):
            # SageMaker's answer to a spot request whose max wait is missing or shorter than its
            # max runtime (1 day when not given).
            max_wait_given = stopping.get("MaxWaitTimeInSeconds")
            if not isinstance(max_wait_given, int) or max_wait_given < (max_runtime or 86400):
                raise _validation("Invalid MaxWaitTimeInSeconds. It must be present and be greater than "
                                  "or equal to MaxRuntimeInSeconds")
        hyper = params.get("HyperParameters") or {}
        if not isinstance(hyper, dict) or not all(isinstance(v, str) for v in hyper.values()):
            raise _validation("HyperParameters must map strings to strings")
        duration = None
        if HP_DURATION in hyper:
            try:
                duration = float(hyper[HP_DURATION])
                if not duration >= 0:  # also rejects NaN
                    raise ValueError
            except ValueError:
                raise _validation(f"Hyperparameter {HP_DURATION} must be a number of seconds "
                                  f">= 0, got {hyper[HP_DURATION]!r}") from None
        forced = hyper.get(HP_OUTCOME)
        if forced is not None and forced not in OUTCOMES:
            raise _validation(f"Hyperparameter {HP_OUTCOME} must be one of {', '.join(OUTCOMES)}, "
                              f"got {forced!r}")
        forced_attempts = None
        if HP_OUTCOME_ATTEMPTS in hyper:
            try:
                forced_attempts = int(hyper[HP_OUTCOME_ATTEMPTS])
                if forced_attempts < 0:
                    raise ValueError
            except ValueError:
                raise _validation(f"Hyperparameter {HP_OUTCOME_ATTEMPTS} must be an integer >= 0, "
                                  f"got {hyper[HP_OUTCOME_ATTEMPTS]!r}") from None
        metric_defs = self._validate_metrics(algo.get("MetricDefinitions"), hyper, name)
        max_wait = stopping.get("MaxWaitTimeInSeconds") if params.get("EnableManagedSpotTraining") else None
        stall = None
        if HP_LOG_STALL in hyper:
            try:
                stall = float(hyper[HP_LOG_STALL])
                if not stall >= 0:
                    raise ValueError
            except ValueError:
                raise _validation(f"Hyperparameter {HP_LOG_STALL} must be a number of seconds >= 0") from None
        return {"name": name, "instance_type": instance_type, "instance_count": count,
                "max_runtime": max_runtime, "max_wait": max_wait, "duration": duration, "forced": forced,
                "forced_attempts": forced_attempts, "log_tail": hyper.get(HP_LOG, DEFAULT_FAILURE_LOG),
                "log_stall": stall, "metric_defs": metric_defs}

    @staticmethod
    def _validate_metrics(definitions: Any, hyper: dict, name: str) -> list:
        """MetricDefinitions as SageMaker validates them; (name, regex, final value) each."""
        if definitions is None:
            return []
        if not isinstance(definitions, list):
            raise _validation("algorithmSpecification.metricDefinitions must be a list")
        if len(definitions) > MAX_METRIC_DEFINITIONS:
            raise _validation("1 validation error detected: Value at 'algorithmSpecification.metricDefinitions' "
                              "failed to satisfy constraint: Member must have length less than or equal to "
                              f"{MAX_METRIC_DEFINITIONS}")
        parsed = []
        for index, definition in enumerate(definitions, start=1):
            metric, regex = (definition or {}).get("Name"), (definition or {}).get("Regex")
            for member, value, limit in (("name", metric, 255), ("regex", regex, 500)):
                if not isinstance(value, str) or not 1 <= len(value) <= limit or "\n" in value:
                    raise _validation(f"1 validation error detected: Value at 'algorithmSpecification."
                                      f"metricDefinitions.{index}.member.{member}' failed to satisfy constraint: "
                                      f"Member must have length between 1 and {limit} and match pattern .+")
            assert isinstance(metric, str) and isinstance(regex, str)  # checked just above
            try:
                compiled = re.compile(regex)
            except re.error:
                raise _validation(f"Invalid regex for metric {metric!r}: {regex!r}") from None
            steered = hyper.get(HP_METRIC_PREFIX + metric)
            if steered is not None:
                try:
                    final = float(steered)
                except ValueError:
                    raise _validation(f"Hyperparameter {HP_METRIC_PREFIX}{metric} must be a number") from None
            else:  # drawn from the job (not the attempt), so a sweep's jobs differ, retries do not
                final = round((zlib.crc32(f"{job_prefix(name)}/{metric}".encode()) % 9000) / 10000 + 0.05, 4)
            parsed.append((metric, compiled, final))
        return parsed

    def _new_job(self, spec: dict, params: dict, now: float) -> _Job:
        """Create a job and fix its timeline. Call this with the lock held."""
        name = spec["name"]
        prefix = job_prefix(name)
        self._attempts_by_prefix[prefix] += 1
        attempt = self._attempts_by_prefix[prefix]

        outcome, duration = COMPLETED, spec["duration"]
        scripted = self.faults._scripted_outcome(name)
        if scripted is not None:
            outcome = scripted[0]
            if scripted[1] is not None:
                duration = float(scripted[1])
        elif spec["forced"] is not None and (spec["forced_attempts"] is None
                                             or attempt <= spec["forced_attempts"]):
            outcome = spec["forced"]
        else:
            outcome = self._draw_outcome()
        if duration is None:
            duration = self.default_duration_seconds

        # A job queued on a training plan starts once the plan's capacity is free for it.
        ready_at = spec.get("ready_at", now)
        start = ready_at + self.startup_seconds
        plan: collections.deque[_Transition] = collections.deque()
        waiting = "Waiting for capacity in training plan" if ready_at > now else "Launching requested ML instances"
        plan.append(_Transition(now, "InProgress", "Starting", waiting))
        if spec.get("plan") and ready_at >= spec["plan_stops"]:
            plan.append(_Transition(spec["plan_end"], "Failed", "Failed", "Training job failed",
                                    "CapacityError: The training plan ended before capacity for this job became available."))
        elif outcome == CAPACITY_ERROR:
            plan.append(_Transition(start, "Failed", "Failed", "Training job failed",
                                    CAPACITY_ERROR_REASON))
        elif outcome == INTERNAL_SERVER_ERROR:
            plan.append(_Transition(start, "Failed", "Failed", "Training job failed",
                                    INTERNAL_SERVER_ERROR_REASON))
        else:
            plan.append(_Transition(start, "InProgress", "Training",
                                    "Training image download completed. Training in progress."))
            max_runtime = spec["max_runtime"]
            final: tuple[str, str, str, str | None]
            if outcome == ALGORITHM_ERROR:
                end, final = start + duration / 2, ("Failed", "Failed", "Training job failed",
                                                    ALGORITHM_ERROR_REASON)
            elif outcome == SPOT_INTERRUPTED:
                # Reclaimed halfway; without spot capacity again it waits until max_wait.
                plan.append(_Transition(start + duration / 2, "InProgress", "Interrupted",
                                        "Training job interrupted: the spot instances were reclaimed"))
                if spec["max_wait"] is not None:
                    end = max(now + spec["max_wait"], start + duration / 2)
                    final = ("Stopped", "MaxWaitTimeExceeded", "Training job exceeded its max wait time", None)
                else:
                    end, final = start + duration / 2, ("Failed", "Failed", "Training job failed", CAPACITY_ERROR_REASON)
            elif outcome == MAX_RUNTIME_EXCEEDED:
                end = start + (max_runtime if max_runtime is not None else duration)
                final = ("Stopped", "MaxRuntimeExceeded", "Training job exceeded its max runtime", None)
            else:
                end, final = start + duration, ("Completed", "Completed", "Training job completed",
                                                None)
            if outcome != SPOT_INTERRUPTED and max_runtime is not None and end - start > max_runtime:
                outcome = MAX_RUNTIME_EXCEEDED
                end = start + max_runtime
                final = ("Stopped", "MaxRuntimeExceeded", "Training job exceeded its max runtime", None)
            max_wait = spec["max_wait"]
            if outcome != SPOT_INTERRUPTED and max_wait is not None and end - now > max_wait:
                # Managed spot training: the whole job, waiting included, ends at max_wait.
                outcome = MAX_WAIT_TIME_EXCEEDED
                end = now + max_wait
                final = ("Stopped", "MaxWaitTimeExceeded", "Training job exceeded its max wait time", None)
                if end <= start:
                    plan.pop()  # it never got its spot instances: no Training
            plan.append(_Transition(end, *final))
            if spec.get("plan") and end > spec["plan_stops"]:
                self._stop_at_plan_end(plan, spec["plan_stops"])

        job = _Job(name=name, arn=training_job_arn(name), prefix=prefix,
                   request=copy.deepcopy(params), instance_type=spec["instance_type"],
                   instance_count=spec["instance_count"], created_at=now, outcome=outcome,
                   plan=plan, last_modified=now, log_stall_after=spec["log_stall"],
                   log_tail=spec["log_tail"], training_plan=spec.get("plan"), ready_at=ready_at,
                   duration=duration, metric_defs=spec["metric_defs"])
        self._jobs[name] = job
        self._active[name] = job
        self._created_names.append(name)
        self._running_instances[job.instance_type] += job.instance_count
        self._active_by_prefix[prefix] += 1
        self._max_by_prefix[prefix] = max(self._max_by_prefix.get(prefix, 0),
                                          self._active_by_prefix[prefix])
        self._advance_job(job, now)  # emits the InProgress/Starting event
        return job

    def _stop_at_plan_end(self, plan: collections.deque, stops: float) -> None:
        """A job on a training plan still running when SageMaker starts terminating the plan's
        instances (30 minutes before its end) is stopped then: Stopping, then Stopped with
        SecondaryStatus Stopped and no FailureReason (sagemaker_plans' module docstring says
        what this rests on; tests/fixtures/sagemaker_describe_plan_end_stop.json is the answer)."""
        while plan and plan[-1].at >= stops:
            plan.pop()
        plan.append(_Transition(stops, "Stopping", "Stopping", "Stopping the training job"))
        plan.append(_Transition(stops + self.stop_seconds, "Stopped", "Stopped", "The training job has stopped"))

    def _draw_outcome(self) -> str:
        # Draw only for the probabilities that are set. Otherwise switching a fault on
        # would change the random sequence that every other fault sees.
        if self.faults.capacity_error_probability > 0 and \
                self._rng.random() < self.faults.capacity_error_probability:
            return CAPACITY_ERROR
        if self.faults.algorithm_error_probability > 0 and \
                self._rng.random() < self.faults.algorithm_error_probability:
            return ALGORITHM_ERROR
        return COMPLETED

    def _draw_fault(self, operation: str, name: str | None,
                    probabilities: list[tuple[float, str]]) -> str | None:
        scripted = self.faults._pop_scripted(operation, name)
        if scripted is not None:
            return scripted
        for probability, code in probabilities:
            if probability > 0 and self._rng.random() < probability:
                return code
        return None

    def _fault_error(self, code: str, instance_type: str | None, count: int) -> ApiError:
        if code == THROTTLING:
            return ApiError(400, THROTTLING, "Rate exceeded")
        if code in (INTERNAL_FAILURE, LOST_RESPONSE):
            return ApiError(500, INTERNAL_FAILURE, "We encountered an internal error. Please try again.")
        if code == SERVICE_UNAVAILABLE:
            return ApiError(503, SERVICE_UNAVAILABLE, "Service Unavailable. Please try again later.")
        if code == RESOURCE_LIMIT_EXCEEDED:
            instance_type = instance_type or "ml.m5.xlarge"
            used = self._running_instances[instance_type]
            # An injected limit looks like the account is exactly full. With nothing running,
            # "full" would read as a quota of 0 Instances, which callers rightly treat as a
            # configuration error; an injected fault stands for a transient limit, so the
            # limit it reports is never 0 unless capacity says so.
            limit = self.capacity.get(instance_type, max(used, 1))
            return self._limit_error(instance_type, limit, max(used, limit), max(count, 1))
        return _validation("Injected ValidationException (SageMaker stand-in fault injection)")

    @staticmethod
    def _limit_error(instance_type: str, limit: int, used: int, delta: int) -> ApiError:
        return ApiError(400, RESOURCE_LIMIT_EXCEEDED,
                        f"The account-level service limit '{instance_type} for training job "
                        f"usage' is {limit} Instances, with current utilization of {used} "
                        f"Instances and a request delta of {delta} Instances. Please use AWS "
                        "Service Quotas to request an increase for this quota.")

    # ------------------------------------------------------------------ state machine

    def _advance_all(self, now: float) -> int:
        """Apply every transition due by ``now``. Events go out in time order across jobs.
        Call this with the lock held."""
        due: list[tuple[float, int, _Job, _Transition]] = []
        seq = 0
        for job in self._active.values():
            for transition in job.plan:
                if transition.at > now:
                    break
                due.append((transition.at, seq, job, transition))
                seq += 1
        due.sort(key=lambda item: (item[0], item[1]))
        for _, _, job, transition in due:
            job.plan.popleft()
            self._apply(job, transition)
        for job in list(self._active.values()):
            self._write_progress(job, now)
        return len(due)

    def _advance_job(self, job: _Job, now: float) -> None:
        while job.plan and job.plan[0].at <= now:
            self._apply(job, job.plan.popleft())
        if not job.terminal:
            self._write_progress(job, now)

    def _apply(self, job: _Job, transition: _Transition) -> None:
        at = transition.at
        if job.transitions:
            job.transitions[-1]["EndTime"] = at
        entry = {"Status": transition.secondary, "StartTime": at,
                 "StatusMessage": transition.failure_reason or transition.message}
        job.transitions.append(entry)
        self._write_progress(job, at)
        if transition.secondary == "Training":
            job.training_start = at
            job.logged_until = at
            if self.logs_client is not None:
                self._open_streams(job, at)
        job.status, job.secondary, job.last_modified = transition.status, transition.secondary, at
        if transition.failure_reason:
            job.failure_reason = transition.failure_reason
        if job.terminal:
            entry["EndTime"] = at
            job.training_end = at
            if job.training_start is not None:
                self._last_metric_line(job, at)
            self._active.pop(job.name, None)
            self._running_instances[job.instance_type] -= job.instance_count
            self._active_by_prefix[job.prefix] -= 1
            if self.logs_client is not None and job.status == "Failed":
                self._write_failure_tail(job, at)
        self._emit(job)

    # ------------------------------------------------------------------ CloudWatch Logs

    def log_line(self, name: str, message: str, host: int = 1) -> None:
        """Write one line to host ``host``'s stream of job ``name`` now (a test's "the job logs
        again"). The job must have started Training."""
        with self._lock:
            job = self._jobs[name]
            self._put(job.log_streams[host - 1], [(self.clock(), message)])

    def _open_streams(self, job: _Job, at: float) -> None:
        if not self._log_group_ready:
            try:
                self.logs_client.create_log_group(logGroupName=LOG_GROUP)
            except Exception as exc:  # already there (another stand-in, a restart): fine
                if "ResourceAlreadyExists" not in str(exc):
                    logger.warning("SageMaker stand-in: log group not created: %s", exc)
            self._log_group_ready = True
        for host in range(1, job.instance_count + 1):
            stream = f"{job.name}/algo-{host}-{int(at)}"
            try:
                self.logs_client.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            except Exception as exc:
                logger.warning("SageMaker stand-in: log stream %s not created: %s", stream, exc)
            job.log_streams.append(stream)
        job.logged_until = at
        for host, stream in enumerate(job.log_streams, start=1):
            self._put(stream, [(at, f"algo-{host}: training started ({job.instance_type})")])

    def _write_progress(self, job: _Job, now: float) -> None:
        """Progress lines every log_interval_seconds of Training up to ``now`` (at most 20 a
        stream per call: a long jump in simulated time skips the older ones), parsed for the
        job's metrics as SageMaker does, and written to its log streams when there are any."""
        if job.training_start is None or job.secondary != "Training" or not (job.log_streams or job.metric_defs):
            return
        until = now
        if job.log_stall_after is not None:
            until = min(until, job.training_start + job.log_stall_after)
        interval = self.log_interval_seconds
        times = []
        at = job.logged_until + interval
        while at <= until:
            times.append(at)
            at += interval
        if not times:
            return
        job.logged_until = times[-1]
        start = job.training_start
        for host, stream in enumerate(job.log_streams or [None], start=1):
            lines = [(t, f"algo-{host}: step {int((t - start) // interval)}{self._metric_text(job, t)}")
                     for t in times[-20:]]
            if host == 1:
                self._parse_metrics(job, lines)
            if stream is not None:
                self._put(stream, lines)

    @staticmethod
    def _metric_text(job: _Job, at: float) -> str:
        """`` loss=… <name>=<value> …``: a progress line's metrics at ``at``. A defined metric
        moves from 0.1 away from its final value to it over the run (down for a loss or an
        error, up otherwise)."""
        start = job.training_start or at
        values = {"loss": f"{1.0 / (1 + (at - start) / 600):.4f}"}
        left = 1.0 - min(1.0, (at - start) / job.duration) if job.duration > 0 else 0.0
        for metric, _regex, final in job.metric_defs:
            falls = "loss" in metric.lower() or "err" in metric.lower()
            # Never below 0: a drawn final under 0.1 must still read as a number its regex takes.
            values[metric] = f"{max(0.0, final + (0.1 if falls else -0.1) * left):.4f}"
        return "".join(f" {metric}={value}" for metric, value in values.items())

    @staticmethod
    def _parse_metrics(job: _Job, lines: list[tuple[float, str]]) -> None:
        """What SageMaker does with the log: each definition's regex over each line; the first
        group of the last match is the metric's value."""
        for at, line in lines:
            for metric, regex, _final in job.metric_defs:
                match = regex.search(line)
                if match is None or match.lastindex is None:
                    continue
                try:
                    job.metric_last[metric] = (float(match.group(1)), at)
                except (TypeError, ValueError):
                    continue

    def _last_metric_line(self, job: _Job, at: float) -> None:
        """The run's last words: its metrics as they ended (written to host 1's log if there
        is one, parsed either way)."""
        if not job.metric_defs:
            return
        line = [(at, f"algo-1: end of training{self._metric_text(job, at)}")]
        self._parse_metrics(job, line)
        if job.log_streams:
            self._put(job.log_streams[0], line)

    def _write_failure_tail(self, job: _Job, at: float) -> None:
        if not job.log_streams:
            return  # it never trained: SageMaker has no log for it either
        self._put(job.log_streams[0], [(at, line) for line in job.log_tail.split("\n")])
        for host, stream in enumerate(job.log_streams[1:], start=2):
            self._put(stream, [(at, f"algo-{host}: worker exiting: algo-1 failed")])

    def _put(self, stream: str, lines: list[tuple[float, str]]) -> None:
        events = [{"timestamp": int(t * 1000), "message": message or " "} for t, message in lines]
        try:
            answer = self.logs_client.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)
        except Exception as exc:  # a log that cannot be written must never break a job
            logger.warning("SageMaker stand-in: log events for %s not written: %s", stream, exc)
            return
        if answer.get("rejectedLogEventsInfo"):
            logger.warning("SageMaker stand-in: CloudWatch refused log events for %s: %s (older than 14 days?)",
                           stream, answer["rejectedLogEventsInfo"])

    def _describe(self, job: _Job) -> dict:
        request = job.request
        result: dict[str, Any] = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TrainingJobStatus": job.status,
            "SecondaryStatus": job.secondary,
            "HyperParameters": dict(request.get("HyperParameters") or {}),
            "AlgorithmSpecification": copy.deepcopy(request["AlgorithmSpecification"]),
            "RoleArn": request["RoleArn"],
            "OutputDataConfig": copy.deepcopy(request["OutputDataConfig"]),
            "ResourceConfig": copy.deepcopy(request["ResourceConfig"]),
            "StoppingCondition": copy.deepcopy(request["StoppingCondition"]),
            "CreationTime": job.created_at,
            "LastModifiedTime": job.last_modified,
            "SecondaryStatusTransitions": [dict(t) for t in job.transitions],
        }
        for field in _ECHOED_FIELDS:
            if field in request:
                result[field] = copy.deepcopy(request[field])
        if job.failure_reason:
            result["FailureReason"] = job.failure_reason
        if job.training_start is not None:
            result["TrainingStartTime"] = job.training_start
        if job.training_end is not None:
            result["TrainingEndTime"] = job.training_end
        if job.terminal:
            seconds = 0
            if job.training_start is not None and job.training_end is not None:
                seconds = max(0, int(round(job.training_end - job.training_start)))
            result["TrainingTimeInSeconds"] = seconds
            result["BillableTimeInSeconds"] = seconds
        if job.metric_last:
            result["FinalMetricDataList"] = [
                {"MetricName": metric, "Value": value, "Timestamp": at}
                for metric, (value, at) in sorted(job.metric_last.items())
            ]
        if job.status == "Completed":
            output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            result["ModelArtifacts"] = {"S3ModelArtifacts": f"{output}/{job.name}/output/model.tar.gz"}
        return result

    # ------------------------------------------------------------------ events

    def _emit(self, job: _Job) -> None:
        """Queue the state-change event for the job's current state. Call with the lock held."""
        detail = self._describe(job)
        for field in _TIME_FIELDS:
            if field in detail:
                detail[field] = int(round(detail[field] * 1000))
        for entry in detail.get("FinalMetricDataList", []):
            entry["Timestamp"] = int(round(entry["Timestamp"] * 1000))
        for entry in detail["SecondaryStatusTransitions"]:
            for field in ("StartTime", "EndTime"):
                if field in entry:
                    entry[field] = int(round(entry[field] * 1000))
        when = datetime.datetime.fromtimestamp(job.last_modified, datetime.UTC)
        event = {
            "version": "0",
            # From the seeded RNG, so that runs with the same seed give the same ids.
            "id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT_ID,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [job.arn],
            "detail": detail,
        }
        copies = 1
        if self.faults.duplicate_event_probability > 0 and \
                self._rng.random() < self.faults.duplicate_event_probability:
            copies = 2  # at-least-once delivery: the same event, same id, twice
        for _ in range(copies):
            delivered = copy.deepcopy(event)
            self._outbox.append(delivered)
            if self.on_event is not None:
                self._callback_queue.append(copy.deepcopy(event))

    def _deliver_callbacks(self) -> None:
        # Called outside the lock, so a callback may call the stand-in (or boto3) again.
        # A flag for each thread stops a callback's own calls from delivering events again
        # within it. Those events are delivered by the outer loop instead, in order.
        if getattr(self._tls, "delivering", False):
            return
        self._tls.delivering = True
        try:
            while True:
                with self._lock:
                    if not self._callback_queue:
                        return
                    event = self._callback_queue.popleft()
                callback = self.on_event
                if callback is None:
                    continue
                try:
                    callback(event)
                except Exception:
                    logger.exception("SageMaker stand-in: on_event callback raised")
        finally:
            self._tls.delivering = False
