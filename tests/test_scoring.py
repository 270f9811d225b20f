"""The exact-match scorer behind every headline percentage: the tricky cases."""

import pytest

from gist_memory.data.scoring import contains_match, normalize


@pytest.mark.parametrize("prediction, reference, hit", [
    ("The pass key is 33810.", "33810", True),
    ("338105", "33810", False),              # a number inside a longer number is not the number
    ("33820", "33810", False),               # one digit off
    ("33,810", "33810", False),              # a comma splits a number into two
    ("It is MARSEILLE!", "Marseille", True),  # case and punctuation
    ("Marseilles", "Marseille", False),      # a longer word is not the word
    ("pale olive, I think", "pale olive", True),
    ("olive", "pale olive", False),
    ("at 04:15 sharp", "04:15", True),
    ("at 4:15", "04:15", False),
    ("QX-8812-B", "QX-8812-B", True),
    ("qx 8812 b", "QX-8812-B", True),       # punctuation inside a code is a word break on both sides
    ("비밀번호는 48213입니다.", "48213", True),  # Korean particles attach to the number
    ("비밀번호는 482135입니다.", "48213", False),
    ("서울특별시", "서울", False),               # a Hangul word is one word
    ("", "33810", False),
    ("anything", "", False),                  # an empty reference never matches
])
def test_contains_match(prediction, reference, hit):
    assert contains_match(prediction, reference) is hit


def test_normalize_is_idempotent():
    for text in ("The key: 33810!", "비밀번호는 48213입니다.", "QX-8812-B at 04:15"):
        assert normalize(normalize(text)) == normalize(text)
