"""The notification outbox: jobs with an undelivered status change (the sparse ``Outbox``
index), and the per-job delivery lease that keeps two dispatchers from sending one change twice."""

from __future__ import annotations

from datetime import datetime

from botocore.exceptions import ClientError

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import from_item
from backend.domain.model import Job
from backend.domain.times import format_utc


class DynamoOutbox(DynamoTable):
    """The :class:`backend.ports.OutboxStore` part of the DynamoDB store."""

    def outbox_job_ids(self, limit: int | None = None) -> list[str]:
        """Ids of jobs with undelivered notifications, oldest change first."""
        ids: list[str] = []
        for answer in self._query(
            IndexName="Outbox",
            KeyConditionExpression="OutboxKey = :k",
            ExpressionAttributeValues={":k": {"S": "pending"}},
            **({"Limit": limit} if limit else {}),
        ):
            ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))
            if limit is not None and len(ids) >= limit:
                return ids[:limit]
        return ids

    def acquire_delivery(self, job_id: str, token: str, now: datetime, until: datetime) -> Job | None:
        """Take the job's delivery lease (so two dispatchers never send the same change twice)
        and return the job as stored, with its ``delivered`` map; None if another holds it."""
        try:
            answer = self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job_id}},
                UpdateExpression="SET DeliveryLease = :lease",
                ConditionExpression="attribute_exists(JobId) AND (attribute_not_exists(DeliveryLease) OR DeliveryLease.#until < :now)",
                ExpressionAttributeNames={"#until": "Until"},
                ExpressionAttributeValues={
                    ":lease": {"M": {"Token": {"S": token}, "Until": {"S": format_utc(until)}}},
                    ":now": {"S": format_utc(now)},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError:
            return None
        self.metrics.items_read += 1
        return from_item(answer["Attributes"])

    def finish_delivery(self, job: Job, token: str, delivered: dict[str, int], *, all_done: bool) -> None:
        """Record what was delivered and release the lease; when everything up to the job's
        last change is delivered and the job has not changed since, leave the Outbox index."""
        values = {":d": {"M": {k: {"N": str(v)} for k, v in delivered.items()}}, ":t": {"S": token}}
        names = {"#token": "Token"}
        if all_done:
            try:
                self._call(
                    "update_item",
                    TableName=self._table,
                    Key={"JobId": {"S": job.job_id}},
                    UpdateExpression="SET Delivered = :d REMOVE DeliveryLease, OutboxKey, OutboxSort",
                    ConditionExpression="DeliveryLease.#token = :t AND Version = :v",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**values, ":v": {"N": str(job.version)}},
                )
                return
            except ClientError:
                pass  # the job changed meanwhile: its new change keeps it in the outbox
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job.job_id}},
                UpdateExpression="SET Delivered = :d REMOVE DeliveryLease",
                ConditionExpression="DeliveryLease.#token = :t",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError:
            pass  # our lease expired and another dispatcher took over: it re-reads Delivered
