"""The recovery sheet: the 24 words on paper, with what to do with them.

One content (`KitSheet`), two renderings: the HTML print view
(templates/recovery_kit.html) and an A4 PDF made here with fpdf2. Both are
built in memory for the one response and never written to the box's disk:
the words exist at rest only on this sheet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from babel.dates import format_date

from strongroom.gc_settle import collect_now
from strongroom.web.i18n import N_, Translator

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")

TITLE = N_("Strongroom recovery sheet")
INTRO = N_(
    "These 24 words are the box's identity. With them, and a backup drive, a new box "
    "becomes this box again: same archive, same proofs, the same box for every phone."
)
# (heading, text): the instructions, in the order a person needs them.
INSTRUCTIONS: tuple[tuple[str, str], ...] = (
    (
        N_("When to use them"),
        N_(
            "Only if the box is lost, stolen or broken, or if no administrator can unlock "
            "it any more. Day to day, each administrator unlocks it with their own passphrase."
        ),
    ),
    (
        N_("Where to keep this sheet"),
        N_(
            "In a safe or a sealed envelope, away from the box and from its backup drives. "
            "Never photograph it, e-mail it or type the words into a computer other than "
            "a Strongroom box."
        ),
    ),
    (
        N_("How to restore"),
        N_(
            "Set up a new box, choose “Restore from 24 words” in the first-run wizard, type "
            "the words in order, then choose the latest backup drive."
        ),
    ),
    (
        N_("Who can read the archive with them"),
        N_(
            "Anyone holding these words and a backup drive. Treat this sheet like the key "
            "to the practice's records."
        ),
    ),
)
FIELD_PRACTICE = N_("Practice")
FIELD_DATE = N_("Date")
# The label the footer gives the same value: one name per fingerprint across the product.
FIELD_BOX = N_("Protocol fingerprint (phone pairing)")
# The HTTPS key's fingerprint (web/tls_key.py), not the certificate's: the certificate
# is issued again at first set-up and at each rename, its key stays, and paper lasts.
FIELD_TLS_KEY = N_("HTTPS public key (SHA-256, stays the same)")
# Printed with it: what to compare it with, and when another key is expected, so that a
# browser warning naming another key is never taken for normal (docs/operations.md).
TLS_KEY_NOTE = (
    N_("The HTTPS public key"),
    N_(
        "When the browser warns about the box's certificate, open the certificate's details "
        "(Chrome, Edge: the “Not secure” sign, then “Certificate is not valid”) and compare "
        "the SHA-256 fingerprint of its public key with the one above. It stays the same when "
        "the certificate is issued again (first set-up, new name); it changes only when the box "
        "itself is replaced, for example by a restore onto a new box. If it differs at any other "
        "time, do not accept the certificate, and call whoever looks after the box."
    ),
)
BLANK = "______________________________"


@dataclass(frozen=True)
class KitSheet:
    words: list[str]
    practice_name: str  # "" before the wizard asks it: the sheet leaves a line to write it
    issued: dt.date
    box_fingerprint: str
    tls_key_fingerprint: str | None = None  # None: the box serves plain HTTP (development)

    def fields(self, translate: Translator) -> list[tuple[str, str]]:
        rows = [
            (translate(FIELD_PRACTICE), self.practice_name or BLANK),
            (translate(FIELD_DATE), format_date(self.issued, "long", locale=translate.language)),
            (translate(FIELD_BOX), self.box_fingerprint),
        ]
        if self.tls_key_fingerprint:
            rows.append((translate(FIELD_TLS_KEY), self.tls_key_fingerprint))
        return rows

    def instructions(self) -> tuple[tuple[str, str], ...]:
        """(heading, text) msgids, in the order a person needs them."""
        return (*INSTRUCTIONS, TLS_KEY_NOTE) if self.tls_key_fingerprint else INSTRUCTIONS


def kit_pdf(sheet: KitSheet, translate: Translator, font_dir: Path = DEJAVU_DIR) -> bytes:
    """An A4 page: title, practice, date, fingerprints, the 24 words, the instructions."""
    # Imported here, not at module load: fpdf2 (with PIL and fontTools) is ~36 MiB
    # of a started box's memory, and only this PDF uses it.
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    family = "helvetica"
    if (font_dir / "DejaVuSans.ttf").is_file() and (font_dir / "DejaVuSans-Bold.ttf").is_file():
        pdf.add_font("DejaVu", "", str(font_dir / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(font_dir / "DejaVuSans-Bold.ttf"))
        family = "DejaVu"
    title = translate(TITLE)
    pdf.set_title(title)
    pdf.set_creator("Strongroom")
    pdf.add_page()
    width = pdf.epw
    pdf.set_font(family, "B", 16)
    pdf.multi_cell(width, 9, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 10)
    pdf.multi_cell(width, 5, translate(INTRO), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    labels = sheet.fields(translate)
    pdf.set_font(family, "B", 10)
    label_width = max(pdf.get_string_width(label) for label, _ in labels) + 4
    for label, value in labels:
        pdf.set_font(family, "B", 10)
        pdf.cell(label_width, 6, label)
        pdf.set_font(family, "", 10)
        pdf.multi_cell(width - label_width, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    # The words in three columns of eight, numbered, large enough to copy without error.
    pdf.set_font(family, "B", 13)
    column = width / 3
    for row in range(8):
        for col in range(3):
            number = col * 8 + row + 1
            pdf.cell(column, 9, f"{number:2d}. {sheet.words[number - 1]}", border="B")
        pdf.ln(9)
    pdf.ln(5)
    for heading, text in sheet.instructions():
        pdf.set_font(family, "B", 11)
        pdf.multi_cell(width, 6, translate(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 10)
        pdf.multi_cell(width, 5, translate(text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    data = bytes(pdf.output())
    del pdf  # a heap of reference cycles: freed now, not after 20,000 more objects
    collect_now()
    return data
