"""The base of the domain's pydantic models: each builds its validator on its first use.

Building a model's validator and serializer (its core schema) is most of what defining it
costs, and a cold start defines every model it imports: the bot's ``/train help`` validates
none of them, an idle launcher tick or monitor sweep none either. So the domain's models are
``defer_build``: a model is built when it first validates or serializes, once per process.

Pydantic builds a deferred model without a lock (pydantic 2.13: two threads that first use one
model at once may both rebuild it, one reading the class while the other writes it); local mode
and the tests run Lambda invocations in threads, so the build here takes one lock, and the
second thread finds the model built.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

from backend.domain.times import format_utc, to_utc

_building = threading.RLock()


class DomainModel(BaseModel):
    """A pydantic model of the domain, built on its first use (subclasses' configs add to this)."""

    model_config = ConfigDict(defer_build=True)

    @classmethod
    def model_rebuild(
        cls,
        *,
        force: bool = False,
        raise_errors: bool = True,
        _parent_namespace_depth: int = 2,
        _types_namespace: Any = None,
    ) -> bool | None:
        with _building:
            # One frame deeper than pydantic's own call: the namespace it looks up stays the caller's.
            depth = _parent_namespace_depth + 1 if _parent_namespace_depth > 0 else 0
            return super().model_rebuild(
                force=force, raise_errors=raise_errors, _parent_namespace_depth=depth, _types_namespace=_types_namespace
            )


# A timestamp field: any datetime in (a naive one taken as UTC), aware UTC kept, and written in
# backend.domain.times' one sortable format.
UtcDatetime = Annotated[
    datetime,
    AfterValidator(to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
