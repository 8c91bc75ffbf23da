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

from dataclasses import dataclass
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

    def _candidates(self, facts: ConversationFacts, level: str) -> list[Assignment]:
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
