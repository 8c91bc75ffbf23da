"""The box identity as 24 BIP39 words: 256-bit entropy <-> words, in English or French.

Encoding uses the standard BIP39 scheme through the `mnemonic` library, so any BIP39 tool
reads the same words. Parsing is deliberately forgiving, because the words are typed by an
office manager from a sheet of paper, months after they were printed: case, spacing,
line breaks, numbering ("1. abandon", "2) …"), Unicode normal forms and missing French
accents are all accepted. Anything that is still wrong is reported with the 1-based
position of the word, so the web UI can point at it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import nacl.utils
from mnemonic import Mnemonic

WORD_COUNT = 24
ENTROPY_BYTES = 32
LANGUAGES: tuple[str, ...] = ("english", "french")
DEFAULT_LANGUAGE = "french"

_LANGUAGE_NAMES = {"english": "English", "french": "French"}
# A run of letters (any script, accented or not): digits, punctuation and spaces separate words.
_WORD_TOKEN = re.compile(r"[^\W\d_]+")


class WordsErrorReason(StrEnum):
    """Stable codes the web UI can translate; the exception message is English prose."""

    WRONG_COUNT = "wrong_count"
    UNKNOWN_WORD = "unknown_word"
    MIXED_LANGUAGES = "mixed_languages"
    BAD_CHECKSUM = "bad_checksum"


class WordsError(Exception):
    """The typed words do not spell a valid 24-word identity.

    `position` is 1-based (None when the problem is the number of words), `reason` is a
    `WordsErrorReason`, `word` the offending word as typed, `suggestions` up to 3 close
    words from the detected list.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: WordsErrorReason,
        position: int | None = None,
        word: str | None = None,
        suggestions: tuple[str, ...] = (),
        language: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason: str = reason
        self.position = position
        self.word = word
        self.suggestions = suggestions
        self.language = language


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _canonical(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold()


@dataclass(frozen=True)
class WordList:
    """One BIP39 list with the lookup tables the forgiving parser needs."""

    language: str
    words: tuple[str, ...]  # NFC, in BIP39 index order
    exact: dict[str, int]
    # Accent-free spelling -> index, only where exactly one word of the list has that spelling.
    unaccented: dict[str, int]

    @classmethod
    def from_words(cls, language: str, words: list[str]) -> WordList:
        display = tuple(unicodedata.normalize("NFC", w) for w in words)
        exact = {_canonical(w): i for i, w in enumerate(display)}
        spellings = Counter(_strip_accents(w) for w in exact)
        unaccented = {
            _strip_accents(w): i for w, i in exact.items() if spellings[_strip_accents(w)] == 1
        }
        return cls(language=language, words=display, exact=exact, unaccented=unaccented)

    def index_of(self, token: str) -> int | None:
        """Index of a typed word (any case/normal form; accents optional if unambiguous)."""
        word = _canonical(token)
        if word in self.exact:
            return self.exact[word]
        return self.unaccented.get(_strip_accents(word))

    def suggestions_for(self, token: str, limit: int = 3) -> tuple[str, ...]:
        typed = _strip_accents(_canonical(token))
        by_spelling = {_strip_accents(w): w for w in self.exact}
        # BIP39 words are unique by their first 4 letters: a prefix match is the best guess.
        prefixed = [w for s, w in by_spelling.items() if len(typed) >= 4 and s[:4] == typed[:4]]
        close = difflib.get_close_matches(typed, list(by_spelling), n=limit, cutoff=0.6)
        ordered = [*prefixed, *(by_spelling[s] for s in close)]
        return tuple(dict.fromkeys(ordered))[:limit]


@cache
def word_list(language: str) -> WordList:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES}")
    return WordList.from_words(language, Mnemonic(language).wordlist)


def new_entropy() -> bytes:
    """Fresh 256-bit identity entropy from the OS CSPRNG (via libsodium)."""
    return nacl.utils.random(ENTROPY_BYTES)


def entropy_to_words(entropy: bytes, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """The 24 BIP39 words for `entropy`, in NFC (accents composed, as printed)."""
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"entropy must be {ENTROPY_BYTES} bytes, got {len(entropy)}")
    word_list(language)  # rejects an unsupported language with a clear ValueError
    # The library spells words in NFKD (decomposed accents); print them composed.
    spelled = _mnemonic(language).to_mnemonic(bytes(entropy)).split(" ")
    return [unicodedata.normalize("NFC", w) for w in spelled]


def lookup_word(text: str, language: str) -> str | None:
    """The list's spelling of a typed word, or None: lets a UI compare one confirmed word."""
    tokens = _WORD_TOKEN.findall(_canonical(text))
    if len(tokens) != 1:
        return None
    table = word_list(language)
    index = table.index_of(tokens[0])
    return None if index is None else table.words[index]


def words_to_entropy(text: str) -> bytes:
    """Parse typed words back to the 32-byte entropy, or raise `WordsError`."""
    tokens = _WORD_TOKEN.findall(_canonical(text))
    if len(tokens) != WORD_COUNT:
        raise WordsError(
            f"{WORD_COUNT} words are needed, {len(tokens)} were given.",
            reason=WordsErrorReason.WRONG_COUNT,
        )
    matches = [
        {lang: idx for lang in LANGUAGES if (idx := word_list(lang).index_of(t)) is not None}
        for t in tokens
    ]
    for language in _languages_to_try(matches):
        _check_all_words_in(language, tokens, matches)
        indices = [m[language] for m in matches]
        entropy = _entropy_if_checksum_ok(language, indices)
        if entropy is not None:
            return entropy
    language = _languages_to_try(matches)[0]
    raise WordsError(
        f"The checksum does not match: word {WORD_COUNT} (the last word) is wrong, "
        "or another word was mistyped or two words were swapped.",
        reason=WordsErrorReason.BAD_CHECKSUM,
        position=WORD_COUNT,
        word=tokens[-1],
        language=language,
    )


def _languages_to_try(matches: list[dict[str, int]]) -> list[str]:
    """Most likely language first: the one most words belong to.

    On a tie, the language of the first word that belongs to only one of the tied lists
    wins, so a mixed error points at the first word of the *other* language. If every word
    is in both lists (about 100 words are), both are returned and the checksum decides.
    """
    scores = Counter(lang for m in matches for lang in m)
    best = max((scores[lang] for lang in LANGUAGES), default=0)
    tied = [lang for lang in LANGUAGES if scores[lang] == best]
    if len(tied) == 1:
        return tied
    for m in matches:
        owners = [lang for lang in tied if lang in m]
        if len(owners) == 1:
            return owners
    return sorted(tied, key=lambda lang: lang != DEFAULT_LANGUAGE)


def _check_all_words_in(language: str, tokens: list[str], matches: list[dict[str, int]]) -> None:
    table = word_list(language)
    name = _LANGUAGE_NAMES[language]
    for position, (token, found) in enumerate(zip(tokens, matches, strict=True), start=1):
        if language in found:
            continue
        if found:
            other = _LANGUAGE_NAMES[next(iter(found))]
            raise WordsError(
                f"Word {position} ({token!r}) is {other}, but the other words are {name}: "
                "all 24 words must come from the same list.",
                reason=WordsErrorReason.MIXED_LANGUAGES,
                position=position,
                word=token,
                language=language,
            )
        suggestions = table.suggestions_for(token)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise WordsError(
            f"Word {position} ({token!r}) is not in the {name} word list.{hint}",
            reason=WordsErrorReason.UNKNOWN_WORD,
            position=position,
            word=token,
            suggestions=suggestions,
            language=language,
        )


def _entropy_if_checksum_ok(language: str, indices: list[int]) -> bytes | None:
    mnemonic = _mnemonic(language)
    # The library looks words up in NFKD; hand it its own spelling of each word.
    words = [mnemonic.wordlist[i] for i in indices]
    try:
        return bytes(mnemonic.to_entropy(words))
    except ValueError:
        return None


@cache
def _mnemonic(language: str) -> Mnemonic:
    return Mnemonic(language)
