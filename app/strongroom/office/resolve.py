"""Which retention policy governs a conversation's records, and why.

The most specific assignment wins, in this order:

1. the conversation's own assignment;
2. an assignment to a matter the conversation belongs to;
3. an assignment to one of its persons other than its owner (``contact``: the
   other party, a sender);
4. an assignment to its owner (the staff member whose phone recorded it);
5. the default policy.

Ties (several matters, or several contacts, with different policies) go to the
policy that keeps the record longest: the latest due date, a never-due policy
(an open matter) beating any date, and "review" beating "destroy" on the same
date. When in doubt, keep. A record with no applicable assignment is kept forever.
This rule is normative: docs/records-office.md says the same.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strongroom.archive.db import Connection
from strongroom.office.facts import ConversationFacts, normalise_person
from strongroom.office.policies import (
    DEFAULT_SUBJECT,
    Assignment,
    Policy,
    list_assignments,
    list_policies,
)

LEVELS = ("conversation", "matter", "contact", "owner", "default")


@dataclass(frozen=True)
class Governing:
    """The winning policy, the assignment it came from, and the candidates it beat."""

    policy: Policy
    assignment: Assignment
    due_at: int | None
    beaten: tuple[tuple[Assignment, Policy], ...] = ()

    def why(self) -> dict[str, Any]:
        a = self.assignment
        return {
            "policy": self.policy.name,
            "policy_id": self.policy.id,
            "scope": a.scope,
            "subject": a.subject,
            "assigned_by": a.assigned_by,
            "assigned_at": a.assigned_at,
            "tie_beaten": [
                {"scope": b.scope, "subject": b.subject, "policy": p.name} for b, p in self.beaten
            ],
        }


def _keep_longer(due: int | None, policy: Policy) -> tuple[int, int, int]:
    # Sort key, larger = keeps longer: never due first, then later date, then review.
    return (1 if due is None else 0, due or 0, 1 if policy.action == "review" else 0)


@dataclass(frozen=True)
class Resolver:
    policies: dict[int, Policy]
    by_scope: dict[tuple[str, str], Assignment]

    @classmethod
    def load(cls, conn: Connection) -> Resolver:
        policies = {p.id: p for p in list_policies(conn)}
        by_scope: dict[tuple[str, str], Assignment] = {}
        for a in list_assignments(conn):
            subject = a.subject
            if a.scope in ("contact", "owner"):
                subject = normalise_person(subject)
            by_scope[(a.scope, subject)] = a
        return cls(policies, by_scope)

    @property
    def empty(self) -> bool:
        return not self.by_scope

    @functools.cached_property
    def _scopes(self) -> frozenset[str]:
        # The levels anything is assigned at: the others are skipped for every
        # conversation (tens of thousands of them each night).
        return frozenset(scope for scope, _ in self.by_scope)

    def _candidates(self, facts: ConversationFacts, level: str) -> list[Assignment]:
        if level not in self._scopes:
            return []
        if level == "conversation":
            keys = [str(facts.id)]
        elif level == "matter":
            keys = [str(m.id) for m in facts.matters]
        elif level == "contact":
            keys = sorted(facts.persons - {normalise_person(facts.owner)})
        elif level == "owner":
            keys = [normalise_person(facts.owner)]
        else:
            keys = [DEFAULT_SUBJECT]
        found = [self.by_scope.get((level, k)) for k in keys]
        return [a for a in found if a is not None and a.policy_id in self.policies]

    def governing(self, facts: ConversationFacts, record_ms: int) -> Governing | None:
        """The policy for one record of this conversation (dated `record_ms`)."""
        for level in LEVELS:
            candidates = self._candidates(facts, level)
            if not candidates:
                continue
            scored = []
            for a in candidates:
                policy = self.policies[a.policy_id]
                due = policy.due_at(record_ms, facts.last_at, facts.end_of_matter)
                scored.append((_keep_longer(due, policy), a, policy, due))
            scored.sort(key=lambda s: s[0], reverse=True)
            _, winner, policy, due = scored[0]
            beaten = tuple((a, p) for _, a, p, _ in scored[1:])
            return Governing(policy, winner, due, beaten)
        return None

    def latest_due(self, now_ms: int) -> int:
        """No record dated after this can be due at `now_ms`, in any conversation: the
        latest `latest_due_start` of every assigned policy. A last-activity policy is
        bounded too (its conversation's last activity, `conversations.last_at`, is the
        latest of its records' dates, so each record is at most that old). A matter's
        closing can come before a record's date: any such policy, no bound."""
        bound: int | None = None
        for a in self.by_scope.values():
            policy = self.policies.get(a.policy_id)
            if policy is None:
                continue
            if policy.start_event not in ("record_date", "last_activity"):
                return MAX_SENT_AT
            limit = latest_due_start(policy, now_ms)
            bound = limit if bound is None else max(bound, limit)
        return MAX_SENT_AT if bound is None else bound

    def due_bound(self, facts: ConversationFacts, now_ms: int) -> int | None:
        """The latest record date (sent_at) of this conversation that can be due at
        `now_ms`, or None when none can: what retention reads (no record after it).

        The level that governs a conversation does not depend on a record's date,
        and a record is due only when every candidate of that level is (the one
        that keeps longest wins). A record-date policy is due for records up to
        now minus its duration; the other start events are due for all or none.
        Never below the exact limit (`latest_due_start`), so `governing` still
        decides each record read."""
        bound = MAX_SENT_AT
        for level in LEVELS:
            candidates = self._candidates(facts, level)
            if not candidates:
                continue
            for a in candidates:
                policy = self.policies[a.policy_id]
                if policy.start_event == "record_date":
                    limit: int | None = latest_due_start(policy, now_ms)
                else:
                    due = policy.due_at(0, facts.last_at, facts.end_of_matter)
                    limit = MAX_SENT_AT if due is not None and due <= now_ms else None
                if limit is None:
                    return None
                bound = min(bound, limit)
            return bound
        return None


# Past any record date (ms): "every record of the conversation".
MAX_SENT_AT = 2**62
# How far a calendar subtraction can fall before the true limit: clamping a day to a
# shorter month (31 Jan + 1 month = 28 Feb) moves it by up to 3 days, and the time
# of day by less than one.
_CALENDAR_SLACK_MS = 4 * 86_400_000


def latest_due_start(policy: Policy, now_ms: int) -> int:
    """No record dated after this is due at `now_ms` under a record-date `policy`
    (at most a few days past the exact limit: `governing` decides each record)."""
    d = policy.duration
    if d.unit == "days":
        # A second past the exact limit: Duration.after goes through float seconds and
        # can land 1 ms early, which made a record due at that very ms wait a night.
        return now_ms - d.value * 86_400_000 + 1_000
    months = d.value * (12 if d.unit == "years" else 1)
    back = datetime.fromtimestamp(now_ms / 1000, UTC)
    total = back.month - 1 - months
    year, month = back.year + total // 12, total % 12 + 1
    day = min(back.day, calendar.monthrange(year, month)[1])
    start = back.replace(year=year, month=month, day=day)
    return int(start.timestamp() * 1000) + _CALENDAR_SLACK_MS


@dataclass(frozen=True)
class RecordRetention:
    """What the record page says: the policy, where it comes from, when due, what holds it."""

    governing: Governing | None
    hold_ids: tuple[int, ...]
    matters: tuple[str, ...]


def explain_record(conn: Connection, conversation_id: int, record_ms: int) -> RecordRetention:
    from strongroom.office.facts import load_facts
    from strongroom.office.holds import list_holds

    facts = load_facts(conn).get(conversation_id)
    if facts is None:
        return RecordRetention(None, (), ())
    governing = Resolver.load(conn).governing(facts, record_ms)
    holds = tuple(h.id for h in list_holds(conn, active_only=True) if h.covers(facts, record_ms))
    return RecordRetention(governing, holds, tuple(m.ref for m in facts.matters))
