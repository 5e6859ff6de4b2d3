"""A cold start runs with Python's cyclic garbage collector paused.

A cold start makes some 130,000 objects that live as long as the execution environment
(modules, classes and functions, botocore's service models, pydantic's validators) and almost no
garbage cycles (about a thousand objects), yet the collector, run every couple of thousand
allocations, traverses what is young again and again for nothing: about a tenth of a cold
start's CPU. So in a Lambda execution environment (``AWS_LAMBDA_FUNCTION_NAME`` set) importing
the entry points pauses it (:func:`pause`, called by this package's ``__init__`` and so before
any heavy import), and the end of the first invocation (:func:`settle`) freezes what the cold
start made (``gc.freeze``: kept out of every later collection, as a pre-fork server does before
forking) and lets the collector run again. Outside Lambda (the tests, the CLI) nothing changes.
"""

from __future__ import annotations

import functools
import gc
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_lock = threading.Lock()
_paused = False

Handler = TypeVar("Handler", bound=Callable[..., Any])


def pause() -> None:
    """Pause the collector until :func:`settle`, in a Lambda execution environment only (and
    only if it runs: a collector someone else turned off is left to them)."""
    global _paused
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    with _lock:
        if not _paused and gc.isenabled():
            gc.disable()
            _paused = True


def settle() -> None:
    """The cold start is over: freeze what it made and run the collector again (once; later
    calls do nothing)."""
    global _paused
    if not _paused:
        return
    with _lock:
        if _paused:
            gc.freeze()
            gc.enable()
            _paused = False


def settles(handler: Handler) -> Handler:
    """``handler``, which settles the cold start when its first invocation ends, however it ends."""

    @functools.wraps(handler)
    def settling(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        finally:
            settle()

    return settling  # type: ignore[return-value]
