"""Matter operations by name for `service.run_op` (the CLI, running box or not)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strongroom.archive.db import Connection
from strongroom.office import matters
from strongroom.office.practice_days import day_start_ms, zone_of
from strongroom.office.service import Ctx, _text, find_conversation


def _matter(ctx: Ctx, params: dict[str, Any]) -> matters.Matter:
    ref = _text(params, "matter")
    return ctx.read(lambda conn: matters.find_matter(conn, ref))  # type: ignore[no-any-return]


def matter_list(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    found, zone = ctx.read(lambda conn: (matters.list_matters(conn), zone_of(conn)))
    return {"matters": [m.as_json() for m in found], "time_zone": zone}


def _show(ctx: Ctx, matter_id: int) -> dict[str, Any]:
    """The matter, and the practice's zone its closing day is shown in (as typed)."""
    found, zone = ctx.read(lambda conn: (matters.list_matters(conn), zone_of(conn)))
    return {"matter": next(m.as_json() for m in found if m.id == matter_id), "time_zone": zone}


def matter_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    op = matters.create_matter(
        _text(params, "ref"),
        _text(params, "client"),
        _text(params, "responsible"),
        _text(params, "actor"),
    )
    return _show(ctx, int(ctx.archive.write(op)))


def matter_rename(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    m = _matter(ctx, params)
    op = matters.rename_matter(
        m.id,
        _text(params, "ref") or m.ref,
        _text(params, "client") or m.client,
        _text(params, "responsible") or m.responsible,
        _text(params, "actor"),
    )
    ctx.archive.write(op)
    return _show(ctx, m.id)


def day_ms(ctx: Ctx, params: dict[str, Any], key: str, *, next_day: bool = False) -> int | None:
    """The day typed in `params[key]`, read in the practice's zone (`time_zone` in
    params overrides it, as `--time-zone` does), as ms; None when not given."""
    text = _text(params, key)
    if not text:
        return None
    zone_name = ctx.read(lambda conn: zone_of(conn, _text(params, "time_zone") or None))
    try:
        return day_start_ms(text, zone_name, next_day=next_day)
    except ValueError as exc:
        raise matters.InvalidMatter("dates are written YYYY-MM-DD") from exc


def matter_close(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    m = _matter(ctx, params)
    at = day_ms(ctx, params, "on")
    ctx.archive.write(
        matters.set_matter_closed(m.id, _text(params, "actor"), closed=True, closed_at_ms=at)
    )
    return _show(ctx, m.id)


def matter_reopen(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    m = _matter(ctx, params)
    ctx.archive.write(matters.set_matter_closed(m.id, _text(params, "actor"), closed=False))
    return _show(ctx, m.id)


def _attach(ctx: Ctx, params: dict[str, Any], detach: bool) -> dict[str, Any]:
    m = _matter(ctx, params)
    conv_ref = _text(params, "conversation")

    def q(conn: Connection) -> int | None:
        return find_conversation(conn, conv_ref) if conv_ref else None

    conversation = ctx.read(q)
    person = _text(params, "person") or None
    op = matters.attach(
        m.id, _text(params, "actor"), conversation_id=conversation, person=person, detach=detach
    )
    ctx.archive.write(op)
    return _show(ctx, m.id)


def matter_attach(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return _attach(ctx, params, False)


def matter_detach(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return _attach(ctx, params, True)


MATTER_OPS: dict[str, Callable[[Ctx, dict[str, Any]], dict[str, Any]]] = {
    "matter.list": matter_list,
    "matter.create": matter_create,
    "matter.rename": matter_rename,
    "matter.close": matter_close,
    "matter.reopen": matter_reopen,
    "matter.attach": matter_attach,
    "matter.detach": matter_detach,
}
