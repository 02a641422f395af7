import pytest

from asr.text import ALPHABET, BLANK, NUM_CLASSES, decode, encode, normalise, number_to_words, ordinal_to_words


def test_alphabet_is_28_symbols_plus_blank():
    assert ALPHABET == " '" + "abcdefghijklmnopqrstuvwxyz"
    assert NUM_CLASSES == 29 and BLANK == 0


def test_round_trip_of_every_symbol():
    text = "it's " + ALPHABET
    assert decode(encode(text)) == text
    assert BLANK not in encode(text)


def test_decode_drops_blanks():
    assert decode([BLANK, *encode("ab"), BLANK]) == "ab"


def test_encode_rejects_unnormalised_text():
    with pytest.raises(ValueError, match="'A' is not in the alphabet"):
        encode("A cat")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Dr. Smith's 2 cats!", "doctor smith's two cats"),
        (
            "In 1984 I paid $3.50 for the 21st edition.",
            "in nineteen eighty four i paid three dollars fifty cents for the twenty first edition",
        ),
        ("“Don’t,” she said—rock-n-roll & 100% café", "don't she said rock n roll and one hundred percent cafe"),
        ("'Tis the SEASON... 'quoted'  text", "tis the season quoted text"),
        (
            "No. 5 at 3.14 on 2,500 and 007",
            "number five at three point one four on two thousand five hundred and zero zero seven",
        ),
        ("I said no. No. 7 is St. Paul's, etc.", "i said no number seven is saint paul's et cetera"),
        ("Call 2005 or 1900", "call two thousand five or nineteen hundred"),
        ("0,5 and 01,234", "zero five and zero one two three four"),  # a leading zero is read digit by digit
        ("$1.5 billion, £20 Million", "one point five billion dollars twenty million pounds"),
        (
            "1,234,567,890,123,456 and " + "9" * 5000,
            "one two three four five six seven eight nine zero one two three four five six and "
            + " ".join(["nine"] * 5000),
        ),
        ("  \t\n ", ""),
    ],
)
def test_normaliser_on_awkward_text(raw, expected):
    assert normalise(raw) == expected
    assert all(char in ALPHABET for char in normalise(raw))


def test_numbers_spelled_out():
    assert number_to_words(0) == "zero"
    assert number_to_words(115) == "one hundred fifteen"
    assert number_to_words(1_000_001) == "one million one"
    assert ordinal_to_words(3) == "third" and ordinal_to_words(40) == "fortieth" and ordinal_to_words(12) == "twelfth"
