"""Built functions run the way Lambda runs them, against moto and the local stand-ins.

:class:`DeployedFunction` is one function of a `sam build` output: its artifact folder, its
handler and the environment template.yaml gives it (Refs resolved to the resources made here,
parameters at their defaults, endpoints pointed at the stand-ins). Each invocation goes to a warm
worker, an isolated ``python3.13 -I -S`` process running tests/artifact/lambda_runtime.py whose
sys.path holds only the artifact and the runtime's boto3; a new worker starts (a cold start)
when all are busy, as Lambda adds execution environments.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).with_name("lambda_runtime.py")
REGION = "us-east-1"
ACCOUNT = "123456789012"
ALIAS = "live"


class InvocationFailed(AssertionError):
    """The function raised (or died), as Lambda would report it."""


@dataclass
class _Worker:
    process: subprocess.Popen
    log: Path


@dataclass
class DeployedFunction:
    logical_id: str
    name: str  # the FunctionName CloudFormation would give it
    artifact: Path
    handler: str
    environment: dict[str, str]
    python: Path
    boto3_dir: Path
    logs: Path
    timeout_seconds: float = 60.0
    python_flags: tuple[str, ...] = ()  # e.g. ("-X", "importtime") to see what a cold start imports
    invocations: list[dict[str, Any]] = field(default_factory=list)
    _idle: list[_Worker] = field(default_factory=list)
    _all: list[_Worker] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def command(self) -> list[str]:
        # -B: /var/task is read-only on Lambda; nothing may write into the artifact.
        return [str(self.python), "-I", "-S", "-B", *self.python_flags, str(RUNNER), str(self.artifact), str(self.boto3_dir), self.handler]

    def _start(self) -> _Worker:
        log = self.logs / f"{self.name}-{len(self._all)}.log"
        process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"),
            env=self.environment, cwd=self.artifact, text=True, bufsize=1,
        )
        worker = _Worker(process, log)
        with self._lock:
            self._all.append(worker)
        return worker

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        worker = worker or self._start()
        try:
            worker.process.stdin.write(json.dumps(request) + "\n")
            worker.process.stdin.flush()
            with selectors.DefaultSelector() as selector:
                selector.register(worker.process.stdout, selectors.EVENT_READ)
                if not selector.select(self.timeout_seconds + 30):
                    raise InvocationFailed(f"{self.name}: no answer in {self.timeout_seconds + 30:.0f}s\n{self.log_tail(worker)}")
            line = worker.process.stdout.readline()
            if not line:
                raise InvocationFailed(f"{self.name}: the runtime died\n{self.log_tail(worker)}")
        except BaseException:
            worker.process.kill()
            raise
        with self._lock:
            self._idle.append(worker)
        return json.loads(line)

    def context(self) -> dict[str, Any]:
        return {
            "function_name": self.name,
            "function_version": "1",
            "invoked_function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}:{ALIAS}",
            "memory_limit_in_mb": int(self.environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")),
            "aws_request_id": str(uuid.uuid4()),
            "log_group_name": f"/aws/lambda/{self.name}",
            "log_stream_name": "artifact-test",
            "timeout_seconds": self.timeout_seconds,
        }

    def invoke(self, event: dict[str, Any]) -> Any:
        """The handler's result; InvocationFailed if it raised."""
        answer = self._request({"event": event, "context": self.context()})
        self.invocations.append(answer)
        if "errorType" in answer:
            raise InvocationFailed(f"{self.name}: {answer['errorType']}\n{answer['errorMessage']}")
        return answer["result"]

    def cold(self, **changes: Any) -> DeployedFunction:
        """The same function with no execution environment yet: its next invocation is a cold start."""
        return replace(self, **changes, invocations=[], _idle=[], _all=[], _lock=threading.Lock())

    def probe(self) -> dict[str, Any]:
        return self._request({"probe": True})

    def log_tail(self, worker: _Worker | None = None, lines: int = 40) -> str:
        workers = [worker] if worker else self._all
        return "\n".join("\n".join(w.log.read_text(errors="replace").splitlines()[-lines:]) for w in workers)

    def close(self) -> None:
        for worker in self._all:
            if worker.process.poll() is None:
                worker.process.stdin.close()
                try:
                    worker.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait()


def function_environment(transformed: dict[str, Any], logical_id: str, resources: dict[str, str],
                         parameters: dict[str, str]) -> dict[str, str]:
    """What CloudFormation would set: the function's variables, Refs resolved."""
    from infra.deploy.validate import function_environment as declared

    resolved = {}
    for name, value in declared(transformed, logical_id).items():
        if isinstance(value, dict) and set(value) == {"Ref"}:
            target = value["Ref"]
            if target in resources:
                value = resources[target]
            elif target in parameters:
                value = parameters[target]
            else:
                raise AssertionError(f"{logical_id}: {name} refers to {target}, which the artifact test does not create")
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            known = {"AWS::StackName": parameters.get("AWS::StackName", "trainbot"), **parameters, **resources}
            value = re.sub(r"\$\{([^}]+)\}", lambda m, known=known: str(known.get(m[1], m[0])), value["Fn::Sub"])
        if not isinstance(value, str | int | float):
            raise AssertionError(f"{logical_id}: {name} is {value!r}, which the artifact test cannot resolve")
        resolved[name] = str(value)
    return resolved


def lambda_environment(name: str, artifact: Path, memory: int, runtime: str) -> dict[str, str]:
    """The variables Lambda itself sets in every execution environment (none of the host's)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "LAMBDA_TASK_ROOT": str(artifact),
        "HOME": os.environ.get("TMPDIR", "/tmp"),
    }
