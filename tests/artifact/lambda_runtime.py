"""A Lambda execution environment, small: run as ``python3.13 -I -S -B lambda_runtime.py ARTIFACT
BOTO3_DIR HANDLER`` by tests/artifact. Not imported by anything.

``-I -S``: no user site, no site-packages, no PYTHONPATH, not even this script's folder on
sys.path. Then, as Lambda's runtime does, the artifact folder (``/var/task``) goes first and the
runtime's own boto3 (``/var/runtime``) after it: nothing of the test's virtualenv is importable.
The handler is imported once (a cold start) and invoked for each request line on stdin, one JSON
answer line per request on the original stdout; the handler's own output (Powertools' JSON
logs) goes to stderr, as Lambda sends it to CloudWatch.

Requests: ``{"event": …, "context": {…}}`` (answered with the result, the wall and CPU
milliseconds of the invocation and, on the first, of the import before it, and the peak memory) or ``{"probe": true}`` (where every loaded module
came from, and which of the artifact's were compiled from source rather than loaded from bytecode).
"""

import importlib
import importlib.machinery
import json
import os
import resource
import sys
import time
import traceback

artifact, boto3_dir, dotted = sys.argv[1:4]
sys.path[:0] = [artifact, boto3_dir]

answers = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


class Context:
    def __init__(self, fields, deadline):
        self.__dict__.update(fields)
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# Every module compiled from source instead of loaded from its .pyc (the artifact test wants none
# of the artifact's: /var/task is read-only, a compile there is paid again by every cold start).
compiled_from_source = []
_source_to_code = importlib.machinery.SourceFileLoader.source_to_code


def _recording_source_to_code(self, data, path, *args, **kwargs):
    compiled_from_source.append(str(path))
    return _source_to_code(self, data, path, *args, **kwargs)


importlib.machinery.SourceFileLoader.source_to_code = _recording_source_to_code


def probe():
    # Every loaded module's file but this runtime's own (__main__), as Lambda's bootstrap is its own.
    files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {"", __file__})
    return {"sys_path": sys.path, "files": files, "executable": sys.executable, "version": list(sys.version_info[:3]),
            "flags": {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site},
            "compiled_from_source": [p for p in compiled_from_source if p.startswith(artifact)]}


# CPU time (this process's, user + system) as well as wall time: on a shared machine the wall
# clock measures the neighbours too; bench/cold_start.py compares CPU times.
started, started_cpu = time.monotonic(), time.process_time()
module_name, _, attribute = dotted.rpartition(".")
try:
    handler = getattr(importlib.import_module(module_name), attribute)
    init_error = None
except Exception:
    handler, init_error = None, traceback.format_exc()
init_ms, init_cpu_ms = (time.monotonic() - started) * 1000, (time.process_time() - started_cpu) * 1000

for line in sys.stdin:
    request = json.loads(line)
    if request.get("probe"):
        answers.write(json.dumps(probe()) + "\n")
        continue
    if init_error is not None:
        answers.write(json.dumps({"errorType": "InitError", "errorMessage": init_error}) + "\n")
        continue
    fields = request["context"]
    context = Context(fields, time.monotonic() + fields.pop("timeout_seconds", 60))
    started, started_cpu = time.monotonic(), time.process_time()
    try:
        result = handler(request["event"], context)
        timing = {"ms": (time.monotonic() - started) * 1000, "cpu_ms": (time.process_time() - started_cpu) * 1000,
                  # The environment's peak memory so far (Linux: KiB), what Lambda's Max Memory Used reports.
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        answers.write(json.dumps({"result": result, "init_ms": init_ms, "init_cpu_ms": init_cpu_ms, **timing}, default=str) + "\n")
    except Exception as exc:
        answers.write(json.dumps({"errorType": type(exc).__name__, "errorMessage": traceback.format_exc()}) + "\n")
    init_ms = init_cpu_ms = 0.0
