"""The box identity: 24 words, the keys derived from them, and the sealed keystore.

    entropy = new_entropy()                      # 32 bytes, shown once as 24 words
    words = entropy_to_words(entropy, "french")
    entropy == words_to_entropy(" ".join(words))
    keys = derive_box_keys(entropy)              # signing, Noise static, archive, ...
    Keystore.create(path, entropy, passphrase, owner="claire")  # one slot per admin

docs/identity.md is the normative description (KDF, formats, test vectors).
"""

from .errors import (
    KeyfileMissing,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreExists,
    KeystoreMissing,
    LastPassphraseSlot,
    NoKeyfileSlot,
    WrongKeyfile,
    WrongPassphrase,
)
from .keys import BoxKeys, compute_fingerprint, derive_box_keys
from .keystore import Keystore
from .keystore_format import DEFAULT_MEMLIMIT, DEFAULT_OPSLIMIT
from .words import (
    LANGUAGES,
    WORD_COUNT,
    WordsError,
    WordsErrorReason,
    entropy_to_words,
    lookup_word,
    new_entropy,
    words_to_entropy,
)

__all__ = [
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "LANGUAGES",
    "WORD_COUNT",
    "BoxKeys",
    "KeyfileMissing",
    "Keystore",
    "KeystoreCorrupt",
    "KeystoreError",
    "KeystoreExists",
    "KeystoreMissing",
    "LastPassphraseSlot",
    "NoKeyfileSlot",
    "WordsError",
    "WordsErrorReason",
    "WrongKeyfile",
    "WrongPassphrase",
    "compute_fingerprint",
    "derive_box_keys",
    "entropy_to_words",
    "lookup_word",
    "new_entropy",
    "words_to_entropy",
]
