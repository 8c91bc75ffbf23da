"""What an export's VERIFY.txt says beyond the sealed envelope's own checks: how to
check each record's phone signature, its inclusion proof and the log's consistency
(fr, then en), with the commands a stranger types (office/verify_text.py)."""

from __future__ import annotations

from strongroom.office.sealed import PROOF_SECTION_EN, PROOF_SECTION_FR
from strongroom.office.sealed import verify_instructions as envelope_instructions
from strongroom.office.verify_text import CONSISTENCY_EN, CONSISTENCY_FR

_DEVICE_CMD = (
    "openssl pkeyutl -verify -pubin -inkey devices/D<id>.pem -rawin -in message.bin"
    " -sigfile records/<n>.sig"
)
_RECORDS_FR = f"""
6. Chaque message est signé par le téléphone qui l'a écrit. Pour vérifier
   records/<n>.cbor avec la clé du téléphone indiquée dans records/<n>.json :
       (printf 'strongroom-record-v1\\000'; cat records/<n>.cbor) > message.bin
       {_DEVICE_CMD}
   L'empreinte de l'enregistrement (sha256sum records/<n>.cbor) est celle que
   contient la feuille proofs/<n>.leaf.
"""
_RECORDS_EN = f"""
6. Each message is signed by the phone that wrote it. To check records/<n>.cbor
   with the phone key named in records/<n>.json:
       (printf 'strongroom-record-v1\\000'; cat records/<n>.cbor) > message.bin
       {_DEVICE_CMD}
   The record's hash (sha256sum records/<n>.cbor) is the one inside the leaf
   proofs/<n>.leaf.
"""


def export_instructions(root: str, fingerprint: str, zip_name: str | None) -> str:
    """VERIFY.txt of an export: the envelope's checks, then its records' (6), their
    proofs (7) and the log's consistency."""
    return envelope_instructions(
        root,
        fingerprint,
        _RECORDS_FR + PROOF_SECTION_FR.replace("6.", "7.", 1) + CONSISTENCY_FR,
        _RECORDS_EN + PROOF_SECTION_EN.replace("6.", "7.", 1) + CONSISTENCY_EN,
        zip_name=zip_name,
    )
