"""A legal hold placed while the daily destruction is running still protects its records.

`retention.run` plans on a reader, then destroys in a write transaction. Another
writer (an archivist placing a hold on the web page) can take the write lock in
between: the destruction must re-plan inside its own transaction and leave the
newly held records alone. Here that other writer is made to win the lock at
exactly that moment, deterministically, by letting the hold commit just before
the destruction's transaction starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.archive.store import Txn
from strongroom.office import retention
from strongroom.office.certificates import list_certificates, load_certificate
from strongroom.office.holds import HoldSpec, place_hold
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from test_office_support import DAY_MS, T0, Box, new_box, new_phone, say


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def body(box: Box, record: int) -> bytes | None:
    value = box.reader_scalar("SELECT body FROM records WHERE id = ?", record)
    return None if value is None else bytes(value)


def test_a_hold_placed_between_planning_and_destroying_wins(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = new_phone(box.archive)
    disputed = say(box, phone, "pièce du litige Durand", peer="Mme Durand", conv="c-durand", at=T0)
    ordinary = say(box, phone, "rendez-vous confirmé", peer="M. Martin", at=T0)
    spec = PolicySpec("trente jours", Duration(30, "days"), "record_date", "destroy")
    policy = int(box.archive.write(create_policy(spec, "admin")))
    box.archive.write(assign_policy("owner", "maitre.durand", policy, "admin"))
    now = T0 + 31 * DAY_MS
    # Both are due and nothing holds them when the run plans.
    planned = retention.find_due(box.archive.conn, now)
    assert {i.record for i in planned.to_destroy} == {disputed, ordinary}

    write = box.archive.write
    raced: list[int] = []

    def hold_wins_the_lock(op: Callable[[Txn], Any]) -> Any:
        # The first write of the run is its destruction: the hold commits first.
        if not raced:
            hold = HoldSpec("person", "réquisition du juge", person="Mme Durand")
            raced.append(int(write(place_hold(hold, "me.avocat"))))
        return write(op)

    monkeypatch.setattr(box.archive, "write", hold_wins_the_lock)
    result = retention.run(box.archive, now, approver="dr.martin")
    monkeypatch.undo()

    assert raced, "the destruction never wrote: the race was not exercised"
    assert result.plan.to_destroy  # the run did plan both before the hold landed
    assert body(box, disputed) is not None, "a held record was destroyed"
    assert body(box, ordinary) is None
    assert result.destruction.destroyed == 1
    (info,) = list_certificates(box.archive.conn)
    certificate = json.loads(load_certificate(box.archive.conn, info.id)[0])
    assert [r["row_id"] for r in certificate["records"]] == [ordinary]
    # The record is still listed as held, never as destroyed.
    assert [h.item.record for h in retention.find_due(box.archive.conn, now).held] == [disputed]
