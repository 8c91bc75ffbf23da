"""24 words <-> entropy: round trips, forgiving parsing, and errors that point at a word."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.identity import (
    WordsError,
    WordsErrorReason,
    entropy_to_words,
    lookup_word,
    new_entropy,
    words_to_entropy,
)
from strongroom.identity.words import WordList, word_list

ZERO_ENGLISH = ["abandon"] * 23 + ["art"]
# Standard BIP39 vector (Trezor vectors.json).
VECTOR_ENTROPY = bytes.fromhex("68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c")
VECTOR_ENGLISH = (
    "hamster diagram private dutch cause delay private meat slide toddler razor book "
    "happy fancy gospel tennis maple dilemma loan word shrug inflict delay length"
).split()

entropies = st.binary(min_size=32, max_size=32)


def french_words_with_accents() -> tuple[bytes, list[str]]:
    """An entropy whose French words include accented ones (the vector has 'remède')."""
    words = entropy_to_words(VECTOR_ENTROPY, "french")
    assert any(w != _strip(w) for w in words)
    return VECTOR_ENTROPY, words


def _strip(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


# --- encoding -------------------------------------------------------------------------


def test_new_entropy_is_32_fresh_bytes() -> None:
    first, second = new_entropy(), new_entropy()
    assert len(first) == 32 and len(second) == 32
    assert first != second


def test_standard_bip39_english_vectors() -> None:
    assert entropy_to_words(bytes(32), "english") == ZERO_ENGLISH
    assert entropy_to_words(VECTOR_ENTROPY, "english") == VECTOR_ENGLISH


def test_french_is_the_default_and_printed_in_nfc() -> None:
    words = entropy_to_words(VECTOR_ENTROPY)
    assert words == entropy_to_words(VECTOR_ENTROPY, "french")
    assert "remède" in words
    assert all(unicodedata.is_normalized("NFC", w) for w in words)


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(31), bytes(33)])
def test_only_256_bit_entropy_is_encoded(bad: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        entropy_to_words(bad)


def test_unsupported_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        entropy_to_words(bytes(32), "klingon")


@settings(max_examples=60, deadline=None)
@given(entropy=entropies, language=st.sampled_from(["english", "french"]))
def test_round_trip(entropy: bytes, language: str) -> None:
    words = entropy_to_words(entropy, language)
    assert len(words) == 24
    assert words_to_entropy(" ".join(words)) == entropy


@settings(max_examples=40, deadline=None)
@given(entropy=entropies)
def test_round_trip_french_typed_without_accents_in_capitals_nfd(entropy: bytes) -> None:
    words = entropy_to_words(entropy, "french")
    assert words_to_entropy(" ".join(_strip(w).upper() for w in words)) == entropy
    assert words_to_entropy(unicodedata.normalize("NFD", " ".join(words))) == entropy


# --- forgiving parsing ----------------------------------------------------------------


def test_numbering_case_and_whitespace_are_ignored() -> None:
    text = "\n".join(f"  {i}.  {w.upper()}\t" for i, w in enumerate(VECTOR_ENGLISH, start=1))
    assert words_to_entropy(text + "\n\n") == VECTOR_ENTROPY
    text = "  ".join(f"{i}) {w.capitalize()}," for i, w in enumerate(VECTOR_ENGLISH, start=1))
    assert words_to_entropy(text) == VECTOR_ENTROPY


def test_french_accents_in_any_normal_form_or_missing() -> None:
    entropy, words = french_words_with_accents()
    nfd = [unicodedata.normalize("NFD", w) for w in words]
    mixed = [_strip(w) if i % 2 else w for i, w in enumerate(words)]
    for variant in (words, nfd, mixed, [_strip(w) for w in words]):
        assert words_to_entropy(" ".join(variant)) == entropy


def test_accent_free_spelling_is_refused_when_two_words_share_it() -> None:
    table = WordList.from_words("test", ["pâte", "pâté", "éléphant"])
    assert table.index_of("pate") is None
    assert table.index_of("PÂTÉ") == 1
    assert table.index_of("elephant") == 2
    assert table.index_of("elephant".upper()) == 2


def test_words_shared_by_both_lists_do_not_count_as_mixing() -> None:
    # "elephant" is English, and French "éléphant" typed without accents.
    english = word_list("english")
    french = word_list("french")
    assert english.index_of("elephant") is not None
    assert french.index_of("elephant") is not None
    shared = [w for w in english.words if french.index_of(w) is not None]
    assert len(shared) > 50
    # An English mnemonic that uses shared words still parses as English.
    found = 0
    for seed in range(2000):
        entropy = seed.to_bytes(2, "big") * 16
        words = entropy_to_words(entropy, "english")
        if any(w in shared for w in words):
            assert words_to_entropy(" ".join(words)) == entropy
            found += 1
        if found == 5:
            break
    assert found == 5


def test_lookup_word_for_confirming_one_word() -> None:
    assert lookup_word(" Remede ", "french") == "remède"
    assert lookup_word("3. ABANDON", "english") == "abandon"
    assert lookup_word("abandonn", "english") is None
    assert lookup_word("two words", "english") is None


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 12, 23, 25, 48])
def test_wrong_word_count_says_how_many(count: int) -> None:
    words = (VECTOR_ENGLISH * 2)[:count]
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    error = caught.value
    assert error.reason == WordsErrorReason.WRONG_COUNT
    assert error.position is None
    assert f"{count} were given" in str(error)
    assert "24" in str(error)


def test_unknown_word_gives_position_word_and_suggestions() -> None:
    words = list(VECTOR_ENGLISH)
    words[6] = "privat"  # word 7 is "private"
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    error = caught.value
    assert error.reason == WordsErrorReason.UNKNOWN_WORD
    assert error.position == 7
    assert error.word == "privat"
    assert "private" in error.suggestions
    assert 1 <= len(error.suggestions) <= 3
    assert "Word 7" in str(error) and "privat" in str(error) and "private" in str(error)


def test_unknown_french_word_is_suggested_from_the_french_list() -> None:
    _, words = french_words_with_accents()
    position = words.index("remède") + 1
    words[position - 1] = "remde"
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    assert caught.value.position == position
    assert caught.value.language == "french"
    assert "remède" in caught.value.suggestions


def test_nonsense_word_has_no_suggestions_but_a_position() -> None:
    words = list(VECTOR_ENGLISH)
    words[23] = "xqzwvk"
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    assert caught.value.position == 24
    assert caught.value.reason == WordsErrorReason.UNKNOWN_WORD


@pytest.mark.parametrize("position", [1, 5, 24])
def test_one_english_word_in_french_words_is_pointed_at(position: int) -> None:
    words = entropy_to_words(VECTOR_ENTROPY, "french")
    words[position - 1] = "zoo"  # English only
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    error = caught.value
    assert error.reason == WordsErrorReason.MIXED_LANGUAGES
    assert error.position == position
    assert error.word == "zoo"
    assert f"Word {position}" in str(error)


def test_half_and_half_points_at_the_first_word_of_the_other_language() -> None:
    french = entropy_to_words(VECTOR_ENTROPY, "french")
    english = VECTOR_ENGLISH
    words = french[:12] + english[12:]
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    assert caught.value.reason == WordsErrorReason.MIXED_LANGUAGES
    assert caught.value.position == 13


def test_bad_checksum_points_at_the_last_word() -> None:
    words = list(VECTOR_ENGLISH)
    words[0], words[1] = words[1], words[0]  # swapped: every word valid, checksum not
    with pytest.raises(WordsError) as caught:
        words_to_entropy(" ".join(words))
    error = caught.value
    assert error.reason == WordsErrorReason.BAD_CHECKSUM
    assert error.position == 24
    assert "checksum" in str(error)
    assert "24" in str(error)


def test_twelve_word_mnemonics_are_refused() -> None:
    twelve = "legal winner thank year wave sausage worth useful legal winner thank yellow"
    with pytest.raises(WordsError) as caught:
        words_to_entropy(twelve)
    assert caught.value.reason == WordsErrorReason.WRONG_COUNT
