"""records/<n>.json's fields, laid out in one pass (export_json.plain_layout), are the
bytes the generic document gives (json_bytes(record_document(...))) for any CBOR a
phone may sign: nested maps and arrays, byte strings, integer keys, floats, tuples."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.office.export_json import RecordJson
from strongroom.office.export_render import record_document
from strongroom.office.proofs import json_bytes

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=6)
    | st.binary(max_size=6)
    | st.floats(allow_nan=False)
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), inner, max_size=3)
    ),
    max_leaves=12,
)

ROW = (
    7, b"\x01" * 32, "message", b"body", b"\x02" * 64, 1234, 1_700_000_000_123,
    1_700_000_000_000, None, 3, "Phone", "Maître Dupont", b"\x03" * 32, "conv-1", "Mme B",
    "dupont",
)  # fmt: skip


def _outcome(render: Callable[[], bytes]) -> bytes | type[BaseException]:
    try:
        return render()
    except (TypeError, ValueError) as exc:  # a tuple of bytes: neither way writes it
        return type(exc)


@given(st.dictionaries(st.text(max_size=6), _values, max_size=6), st.none() | st.text())
@settings(max_examples=400, deadline=None)
def test_record_json_fields_are_the_generic_documents_bytes(
    fields: dict[str, object], attachment: str | None
) -> None:
    assert _outcome(lambda: RecordJson()(ROW, fields, attachment)) == _outcome(
        lambda: json_bytes(record_document(ROW, fields, attachment))
    )


def test_a_message_records_json_reads_as_the_phone_signed_it() -> None:
    fields = {"v": 1, "kind": "message", "text": "« ça presse »\n", "id": b"\x00\xff", "n": [1]}
    text = RecordJson()(ROW, fields, None).decode()
    assert '"id": "00ff"' in text and '"text": "« ça presse »\\n"' in text
    assert '  "n": [\n   1\n  ],' in text
