"""The job store over one DynamoDB table (boto3 client, standard retry mode).

One module per concern: :mod:`.codec` (item <-> Job, index keys, cursors), :mod:`.jobs`
(registration, reads by id, conditional writes), :mod:`.queries` (the GSI queries),
:mod:`.outbox` (notification outbox and delivery leases), :mod:`.records` (small
``<kind>#<key>`` records, sweep tallies, the Slack thread). :class:`DynamoJobStore` composes
them and implements every port of :mod:`backend.ports` that a store serves.
"""

from __future__ import annotations

from backend.adapters.dynamo.base import StoreMetrics
from backend.adapters.dynamo.codec import from_item, index_keys, to_item
from backend.adapters.dynamo.jobs import DynamoJobs
from backend.adapters.dynamo.outbox import DynamoOutbox
from backend.adapters.dynamo.queries import DynamoQueries
from backend.adapters.dynamo.usage import DynamoUsage
from backend.ports import DuplicateBatch

__all__ = ["DuplicateBatch", "DynamoJobStore", "StoreMetrics", "from_item", "index_keys", "to_item"]


class DynamoJobStore(DynamoJobs, DynamoQueries, DynamoOutbox, DynamoUsage):
    """The job repository, outbox and record store (:mod:`backend.ports`) over one table."""
