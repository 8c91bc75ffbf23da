"""`make bench` rows for the box's night and the records-office pages as the archive
grows (issue #20 "costs that stay flat"): a practice keeps records twenty years, so
each night job and each page must cost the same at 5M records as at 100k.

Measured on the cached corpora (bench_archive.cached_archive: the 100k one, then the
growth sizes, 1M and 5M in the full run; 20k and 30k in --quick), and on an empty
archive. Each row is one job at one size; its ceiling is the same job at the base size
(100k; 20k in --quick), measured in the same run, so the ratio is the growth factor
(flat = 1). The growth corpora hold twice the base's conversations (40,000 against
20,000), so each row's note gives its ratio per conversation too: a job whose cost
follows the conversations shows 2 in the row and 1 per conversation.

The jobs:
- the retention run with a default policy that makes nothing due (the usual night:
  `retention.run`, which plans and destroys nothing), and the due plan with a policy
  that makes 1,000 records due (`retention.find_due`; the destruction of those 1,000
  is not run: it would change the shared corpus, and it costs what it destroys).
  The policies are given to the plan in memory (a Resolver), never written.
- the scheduled verify's incremental run of one day of records (bench_verify's), and
  its fixed part alone: the device events (pairings, revocations) found in the log.
- the pages: dashboard (headline counts, last backup and check, night jobs,
  checklist), holds (the /office page's reads, with three holds that cover the same
  at every size: `_page_holds`) and one keystroke in each of its pickers (the
  conversation, person and matter searches that replaced the page's lists of every
  conversation and person), the exports page (the chosen matter by its key, the
  count of one picked conversation, the CLI's look-up of a conversation by
  OWNER/REF), person export scope (the
  conversations a person is part of), matter export scope (a matter's conversations
  through its client), and the due queue (/office/due) under the 1,000-due policy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_archive as ba
import bench_verify
from bench_archive import Figure
from bench_office import median_s

from strongroom.archive.db import Connection
from strongroom.archive.message_count import MessageCount
from strongroom.archive.verify_events import verify_device_events
from strongroom.archive.verify_records import VerifyReport
from strongroom.office import holds, matter_scope, pickers, retention, review
from strongroom.office.export_scope import count_records, find_conversation, person_conversations
from strongroom.office.holds import Hold, HoldSpec
from strongroom.office.policies import (
    Assignment,
    Duration,
    Policy,
    list_assignments,
    list_policies,
)
from strongroom.office.practice_days import zone_of
from strongroom.office.resolve import Resolver
from strongroom.web import exports_web, office_views
from strongroom.web.dashboard_views import archive_facts
from strongroom.web.office_views import office_names
from strongroom.web.onboarding import checklist

ROUNDS = int(os.environ.get("BENCH_NIGHT_ROUNDS", "3"))
DAY_MS = 86_400_000
DUE = 1_000
# The corpora's records are one second apart (bench_corpus): a one-day policy makes
# the first DUE records due one day and DUE seconds after the first one.
STEP_MS = 1_000


def _resolver(conn: Connection, days: int) -> Resolver:
    """A default policy (record date + `days`, destroy), in memory only."""
    known = {p.id: p for p in list_policies(conn)}
    policy = Policy(-1, "bench", Duration(days, "days"), "record_date", "destroy", "", None)
    default = Assignment("default", "*", policy.id, "bench", 0)
    return Resolver({**known, policy.id: policy}, {("default", "*"): default})


# Typed in the /office pickers: an owner's first letters (staff-1, staff-10..19), a
# sender's (Maître Durand, M. Martin), a matter's (the corpora have none).
PICKER_TYPED = (("conversation", "staff-1"), ("person", "m"), ("matter", "D-"))
# A date-range hold on the corpora's LAST 1,000 records (one a second: bench_corpus): a
# recent range, the usual litigation hold, which nearly every conversation began before.
PAGE_HOLD_RECORDS = 1_000


def _page_holds(last_ms: int) -> list[Hold]:
    """The holds the page lists, in memory (the corpora hold none, and are never
    written): each covers the same at every size, so the row shows what the page
    costs beside what its holds cover. A conversation (its 5 to 125 records), a person
    nobody is (the name look-ups, nothing counted), and the last 1,000 records' dates
    (1,000 conversations, one record each; every conversation of the corpus began
    before the range ends). scripts/bench_office.py's row counts holds that cover more
    as the archive grows (a staff member's every conversation)."""
    specs = [
        HoldSpec("conversation", "bench", conversation_id=5),
        HoldSpec("person", "bench", person="nobody at all"),
        HoldSpec(
            "date_range",
            "bench",
            from_ms=last_ms - (PAGE_HOLD_RECORDS - 1) * STEP_MS,
            to_ms=last_ms,
        ),
    ]
    return [Hold(-n, spec, "bench", 0, None, None, None) for n, spec in enumerate(specs, 1)]


@dataclass(frozen=True)
class Night:
    """Seconds per job at one size, and what it saw."""

    size: int
    seconds: dict[str, float]
    due: int
    conversations: int


def _jobs(conn: Connection, first_ms: int, last_ms: int) -> dict[str, Callable[[], Any]]:
    never = _resolver(conn, 5 * 365)
    one_day = _resolver(conn, 1)
    quiet_now = last_ms + DAY_MS
    due_now = first_ms + DAY_MS + (DUE - 1) * STEP_MS
    active = holds.list_holds(conn, active_only=True)
    running = MessageCount()

    page_holds = _page_holds(last_ms)

    def holds_page() -> Any:
        # As office_views.office_page reads: the holds with their reach, the names of
        # what they and the assignments name, the policies (no list of every
        # conversation or person: the forms search, the next row).
        hold_list = [*holds.list_holds(conn), *page_holds]
        assignments = list_assignments(conn)
        return (
            holds.hold_reach(conn, hold_list),
            office_names(conn, hold_list, assignments),
            list_policies(conn),
            zone_of(conn),
            review.two_approvals(conn),
        )

    # The /exports page: the form's pickers search (the row above), so the page reads
    # only the matter a link names, by its key, and the practice's zone; then the count
    # of the scope picked (GET /exports/count), here conversation 5, its 5 to 125
    # records at every size; and the CLI's `export --conversation` as `hold find`
    # prints it (OWNER/REF, one seek). A phone's reference alone or a name costs one
    # seek per owner besides (export_scope.find_conversation): the practice's staff,
    # which the growth corpora double (20 against 10), not its records.
    picked = {"kind": "conversation", "conversation": "picked", "conversation_id": "5"}
    row = conn.execute("SELECT owner, ref FROM conversations WHERE id = 5").fetchone()
    typed = "nobody/nothing" if row is None else f"{row[0]}/{row[1]}"

    def exports_page() -> Any:
        zone = zone_of(conn)
        try:
            counted: Any = count_records(conn, exports_web.scope_from_form(conn, picked, zone))
        except pickers.NoMatch as refused:  # an empty archive: the page says "no match"
            counted = refused
        return (
            conn.execute(office_views.CHOSEN_MATTER, (1,)).fetchone(),
            counted,
            find_conversation(conn, typed),
        )

    def picker_keystroke() -> Any:
        # What one keystroke in each of the page's pickers reads (GET /office/search).
        return [pickers.find(conn, kind, text) for kind, text in PICKER_TYPED]

    return {
        "retention plan, nothing due": lambda: retention.find_due(conn, quiet_now, resolver=never),
        f"retention plan, {DUE:,} due": lambda: retention.find_due(conn, due_now, resolver=one_day),
        "device events in the log (verify's fixed part)": lambda: verify_device_events(
            conn, VerifyReport()
        ),
        # As the page reads (its message count kept across views: the first view
        # after a start, the warm-up here, counts the whole table once).
        "dashboard page reads": lambda: (
            archive_facts(conn, running, (0, 0)),
            checklist(conn, backup_in_config=False),
        ),
        "holds page reads (/office)": holds_page,
        "holds page pickers, a keystroke each": picker_keystroke,
        "exports page reads (/exports, its count, the CLI's look-up)": exports_page,
        "person export scope": lambda: person_conversations(conn, "staff-1"),
        # A matter through its client (the corpus writes nothing to matters: the
        # matter's look-ups are given its persons, as matter_conversations reads them).
        # The corpora's one client, "M. Martin", writes in every conversation: the row
        # follows the conversations (the growth corpora's twice the base's), flat per
        # conversation; the facts of every conversation it replaced followed the records.
        "matter export scope": lambda: matter_scope.conversations_of(conn, (), ("M. Martin",)),
        f"due queue page, {DUE:,} due": lambda: review.due_queue(conn, due_now, resolver=one_day),
        "_active holds": lambda: active,
    }


def measure(data_dir: Path, size: int) -> Night:
    archive = ba.open_archive(data_dir)
    try:
        with closing(archive.reader()) as conn:
            first, last = conn.execute(
                "SELECT coalesce(min(sent_at), 0), coalesce(max(sent_at), 0) FROM records"
            ).fetchone()
            jobs = _jobs(conn, int(first), int(last))
            seconds = {
                name: median_s(job, ROUNDS)
                for name, job in jobs.items()
                if not name.startswith("_")
            }
            plan = retention.find_due(
                conn,
                int(first) + DAY_MS + (DUE - 1) * STEP_MS,
                resolver=_resolver(conn, 1),
            )
        # The real retention run, nothing due (writes nothing).
        with closing(archive.reader()) as conn:
            never = _resolver(conn, 5 * 365)
        seconds["retention run, nothing due"] = median_s(
            lambda: retention.run(archive, int(last) + DAY_MS, resolver=never), ROUNDS
        )
        with closing(archive.reader()) as conn:
            conversations = int(conn.execute("SELECT count(*) FROM conversations").fetchone()[0])
    finally:
        archive.close()
    return Night(size, seconds, len(plan.to_destroy), conversations)


def _empty(work: Path) -> Night:
    directory = Path(tempfile.mkdtemp(prefix="night-empty-", dir=work))
    try:
        return measure(directory / "data", 0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def night_figures(
    work: Path, base: int, sizes: tuple[int, ...], log: Callable[[str], None] = print
) -> list[Figure]:
    """The night rows of `make bench` (bench.py's one call line)."""
    nights = [_empty(work)]
    for size in (base, *sizes):
        log(f"  night jobs at {size:,} records")
        nights.append(measure(ba.cached_archive(work, size, log=log) / "data", size))
    incremental = {
        n: bench_verify.incremental_verify(ba.cached_archive(work, n, log=log))
        for n in (base, *sizes)
    }
    ceiling = next(n for n in nights if n.size == base)
    figures: list[Figure] = []
    for night in nights:
        if night.size == base:
            continue
        at = f"{night.size:,} records" if night.size else "an empty archive"
        for job, seconds in night.seconds.items():
            # The growth sizes hold twice the base's conversations (40,000 against
            # 20,000): a cost per conversation doubles the row, and says so here.
            per_conversation = (
                f"; per conversation {_per_conversation(night, ceiling, job):.2f}×"
                if night.conversations and ceiling.conversations
                else ""
            )
            figures.append(
                Figure(
                    f"night: {job}, {at}",
                    seconds * 1000,
                    "ms",
                    ceiling.seconds[job] * 1000,
                    f"the same at {base:,} records",
                    "flat (≤ 1.5)",
                    f"median of {ROUNDS}; {night.conversations:,} conversations (the base:"
                    f" {ceiling.conversations:,}){per_conversation}; {night.due:,} due under"
                    " the one-day policy",
                )
            )
    for size in sizes:
        run = incremental[size]
        figures.append(
            Figure(
                f"night: verify --scheduled (incremental, one day), {size:,} records",
                run.seconds * 1000,
                "ms",
                incremental[base].seconds * 1000,
                f"the same at {base:,} records",
                "bounded (its older-log slice grows to SAMPLE_MAX)",
                f"{run.records:,} records checked, slice {run.sample[0]:,}-{run.sample[1]:,}",
            )
        )
    return figures


def _per_conversation(night: Night, base: Night, job: str) -> float:
    """The row's ratio per conversation (its cost and the base's each divided by its
    own conversations): flat = 1 for a job whose cost follows the conversations."""
    base_cost = base.seconds[job] / base.conversations
    return (night.seconds[job] / night.conversations) / base_cost if base_cost else 0.0


def night_section(plan: Any, work: Path, log: Callable[[str], None] = print) -> list[Figure]:
    """bench.py's one call line: base 100k and the growth sizes (1M, 5M); in --quick,
    the 20k corpus against the 30k one."""
    base = 20_000 if plan.quick else 100_000
    sizes = tuple(n for n in plan.growth_sizes if n > base)
    return night_figures(work, base, sizes, log)


__all__ = ["Night", "measure", "night_figures", "night_section"]
