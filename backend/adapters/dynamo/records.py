"""Small non-job records in the job table, keyed ``<kind>#<key>`` (kinds:
:class:`backend.domain.records.RecordKind`): owners' fair-share clocks, sweep tallies, presets,
launcher holds, markers; and the job's Slack thread, set once. None of them carries a GSI key,
so they never show up in job queries."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from backend.adapters.dynamo.attributes import deserialize, serialize
from backend.adapters.dynamo.base import DynamoTable, logger
from backend.adapters.dynamo.codec import plain, record_key
from backend.domain import notice
from backend.domain.records import RecordKind
from backend.errors import StoreUnavailable
from backend.ports import SweepEnd

if TYPE_CHECKING:
    from backend.domain.model import Owner

MAX_FAILURE_LINE = 160  # a failed sweep job's line in the digest list (the record stays small)


class DynamoRecords(DynamoTable):
    """The :class:`backend.ports.RecordStore` part of the DynamoDB store."""

    # --- generic records --------------------------------------------------------------------

    def put_record(
        self,
        kind: str,
        key: str,
        attributes: dict[str, Any],
        *,
        only_if: dict[str, Any] | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Write a small non-job record (``<kind>#<key>``), e.g. a preset. With ``only_if_absent``
        it is written only if there is none yet; with ``only_if`` only while the stored record
        has those attribute values (None: lacks the attribute). Returns whether it was written."""
        item = {"JobId": f"{kind}#{key}", "RecordType": str(kind), **attributes}
        values = json.loads(json.dumps(item), parse_float=Decimal)
        request: dict[str, Any] = {"TableName": self._table, "Item": {k: serialize(v) for k, v in values.items()}}
        if only_if_absent:
            request["ConditionExpression"] = "attribute_not_exists(JobId)"
        elif only_if:
            # A None value: the stored record has no such attribute (it must exist, though).
            request["ConditionExpression"] = " AND ".join(
                ["attribute_exists(JobId)"]
                + [f"attribute_not_exists(#c{i})" if v is None else f"#c{i} = :c{i}" for i, v in enumerate(only_if.values())]
            )
            request["ExpressionAttributeNames"] = {f"#c{i}": name for i, name in enumerate(only_if)}
            values = {f":c{i}": serialize(value) for i, value in enumerate(only_if.values()) if value is not None}
            if values:
                request["ExpressionAttributeValues"] = values
        try:
            self._call("put_item", **request)
        except ClientError:
            return False
        return True

    def set_record_entry(self, kind: str, key: str, map_attribute: str, entry: str, value: Any | None) -> None:
        """Set (or, with None, remove) one entry of a map attribute of a small record, without
        rewriting the rest: concurrent writers of different entries never lose each other's."""
        key_ = record_key(kind, key)
        self._call(
            "update_item",
            TableName=self._table,
            Key=key_,
            UpdateExpression="SET #m = if_not_exists(#m, :empty), RecordType = :kind",
            ExpressionAttributeNames={"#m": map_attribute},
            ExpressionAttributeValues={":empty": {"M": {}}, ":kind": {"S": str(kind)}},
        )
        names = {"#m": map_attribute, "#e": entry}
        if value is None:
            self._call("update_item", TableName=self._table, Key=key_, UpdateExpression="REMOVE #m.#e", ExpressionAttributeNames=names)
        else:
            self._call(
                "update_item",
                TableName=self._table,
                Key=key_,
                UpdateExpression="SET #m.#e = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":v": serialize(value)},
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record's attributes (without its key and kind); None if there is none."""
        answer = self._call("get_item", TableName=self._table, Key=record_key(kind, key), ConsistentRead=True)
        item = answer.get("Item")
        if not item:
            return None
        values = {k: plain(deserialize(v)) for k, v in item.items()}
        values.pop("JobId", None)
        values.pop("RecordType", None)
        return values

    def delete_record(self, kind: str, key: str) -> None:
        self._call("delete_item", TableName=self._table, Key=record_key(kind, key))

    # --- sweep tallies ----------------------------------------------------------------------

    def count_sweep_end(self, sweep_id: str, member: int, outcome: str, failure: str | None = None) -> SweepEnd | None:
        """Count one sweep job's end, once: its index joins the ``Counted`` number set in the same
        conditional write that bumps the tally. The record is its own small item (not the
        sweep's batch record with every job id), so the write stays cheap."""
        expression = "ADD Tally.#o :one, Counted :member SET RecordType = :kind"
        values: dict[str, Any] = {
            ":one": {"N": "1"}, ":member": {"NS": [str(member)]}, ":n": {"N": str(member)}, ":kind": {"S": RecordKind.SWEEP_ENDS.value},
        }
        if failure is not None:
            expression += ", Failures = list_append(if_not_exists(Failures, :none), :failure)"
            values[":none"] = {"L": []}
            values[":failure"] = {"L": [{"S": failure[:MAX_FAILURE_LINE]}]}
        key = record_key(RecordKind.SWEEP_ENDS, sweep_id)
        for _ in range(3):
            try:
                answer = self._call(
                    "update_item",
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression="attribute_exists(Tally) AND NOT contains(Counted, :n)",
                    ExpressionAttributeNames={"#o": outcome},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                break
            except ClientError as exc:
                old = exc.response.get("Item")
                if old and "Tally" in old:
                    if str(member) in old.get("Counted", {}).get("NS", []):
                        return None  # counted before: a redelivery
                    continue  # created meanwhile by another end: count again
            try:  # the sweep's first end: create the record (once), then count
                self._call(
                    "put_item",
                    TableName=self._table,
                    Item={**key, "RecordType": {"S": RecordKind.SWEEP_ENDS.value}, "Tally": {"M": {}}},
                    ConditionExpression="attribute_not_exists(JobId)",
                )
            except ClientError:
                pass  # another end created it
        else:
            raise StoreUnavailable(f"sweep {sweep_id}: its end count kept changing")
        record = {k: plain(deserialize(v)) for k, v in answer["Attributes"].items()}
        ended = sweep_end(record)
        if len(ended.failures) > 2 * notice.SWEEP_FAILURES_KEPT:
            self._trim_failures(key, ended)
        return ended

    def _trim_failures(self, key: dict[str, Any], ended: SweepEnd) -> None:
        """Drop all but the newest SWEEP_FAILURES_KEPT failure lines, counting the dropped ones
        (``FailuresBefore``): once, conditionally on the count as read. Lines appended meanwhile
        are newer and stay. A trim that fails is harmless: the next one takes more."""
        drop = len(ended.failures) - notice.SWEEP_FAILURES_KEPT
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=key,
                UpdateExpression="REMOVE " + ", ".join(f"Failures[{i}]" for i in range(drop)) + " ADD FailuresBefore :drop",
                ConditionExpression="FailuresBefore = :before" if ended.failures_before else "attribute_not_exists(FailuresBefore)",
                ExpressionAttributeValues={
                    ":drop": {"N": str(drop)},
                    **({":before": {"N": str(ended.failures_before)}} if ended.failures_before else {}),
                },
            )
        except ClientError:
            pass  # another end trimmed it first
        except StoreUnavailable as exc:
            logger.warning("sweep failure lines not trimmed; the next end trims them", extra={"error": str(exc)})

    def claim_sweep_mark(self, sweep_id: str, attribute: str, expected: int, new: int) -> bool:
        condition = "#a = :expected" if expected else "attribute_not_exists(#a) OR #a = :expected"
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key(RecordKind.SWEEP_ENDS, sweep_id),
                UpdateExpression="SET #a = :new",
                ConditionExpression=f"attribute_exists(JobId) AND ({condition})",
                ExpressionAttributeNames={"#a": attribute},
                ExpressionAttributeValues={":expected": {"N": str(expected)}, ":new": {"N": str(new)}},
            )
        except ClientError:
            return False
        return True

    def claim_record_mark(self, kind: str, key: str, attribute: str, expected: int, new: int, *, expires_at: int | None = None) -> bool:
        condition = "#a = :expected" if expected else "attribute_not_exists(#a) OR #a = :expected"
        sets = ["#a = :new", "RecordType = :kind"]
        values: dict[str, Any] = {":expected": {"N": str(expected)}, ":new": {"N": str(new)}, ":kind": {"S": str(kind)}}
        if expires_at is not None:
            sets.append("ExpiresAt = :expires")
            values[":expires"] = {"N": str(expires_at)}
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key(kind, key),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#a": attribute},
                ExpressionAttributeValues=values,
            )
        except ClientError:
            return False
        return True

    # --- the job's Slack thread -------------------------------------------------------------

    def set_thread(self, job_id: str, channel_id: str, thread_ts: str) -> None:
        """Record the job's Slack thread root (once: a second root never replaces the first)."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job_id}},
                UpdateExpression="SET Slack = :s",
                ConditionExpression="attribute_exists(JobId) AND (attribute_not_exists(Slack.ThreadTs) OR Slack.ThreadTs = :null)",
                ExpressionAttributeValues={
                    ":s": {"M": {"ChannelId": {"S": channel_id}, "ThreadTs": {"S": thread_ts}}},
                    ":null": {"NULL": True},
                },
            )
        except ClientError:
            pass  # a root exists already: keep it

    # --- owners' fair-share clocks ----------------------------------------------------------

    def _owner_next_tag(self, owner: Owner) -> float | None:
        """The owner's fair-share clock (see :mod:`backend.domain.fairness`); None: none yet."""
        answer = self._call("get_item", TableName=self._table, Key=record_key(RecordKind.OWNER, owner.key), ConsistentRead=True)
        item = answer.get("Item")
        return float(item["NextTag"]["N"]) if item else None

    def _advance_owner_clock(self, owner: Owner, next_tag: float) -> None:
        """Move the owner's fair-share clock forward (never back). Two registrations racing
        may share a tag; that only ties their order, which creation time then breaks."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key(RecordKind.OWNER, owner.key),
                UpdateExpression="SET NextTag = :t, RecordType = :r",
                ConditionExpression="attribute_not_exists(NextTag) OR NextTag < :t",
                ExpressionAttributeValues={":t": {"N": repr(next_tag)}, ":r": {"S": RecordKind.OWNER.value}},
            )
        except ClientError:
            pass  # another registration moved it further already


def sweep_end(record: dict[str, Any]) -> SweepEnd:
    """A sweep's end record (plain values) as the notifier reads it."""
    return SweepEnd(
        tally={str(k): int(v) for k, v in (record.get("Tally") or {}).items()},
        failures=[str(f) for f in record.get("Failures") or []],
        digested=int(record.get("Digested", 0)),
        final=int(record.get("Final", 0)) == 1,  # posted (a claim is negative: see the notifier)
        failures_before=int(record.get("FailuresBefore", 0)),
    )
