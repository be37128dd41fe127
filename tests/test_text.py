"""`core.text.clean_display_name`: the names of keys, tokens and organizations must be
visible, one-line text."""

import pytest
from django.core.exceptions import ValidationError

from core.text import clean_display_name, has_control_characters, with_article

# Names no list, audit trail or terminal can show faithfully: each must be refused.
INVISIBLE_NAMES = {
    "zero-width space alone": "\u200b",
    "zero-width space inside": "Prod\u200buction",
    "zero-width space around": "\u200bProd\u200b",
    "bidi override": "a\u202eb",
    "bidi isolate": "a\u2066b\u2069",
    "byte order mark": "\ufeffProd",
    "soft hyphen": "Pro\u00adduction",
    "lone combining mark": "\u0301",
    "combining marks only": "\u0301\u0308",
    "line separator alone": "\u2028",
    "line separator inside": "a\u2028b",
    "paragraph separator inside": "a\u2029b",
    "NUL": "a\x00b",
    "newline inside": "two\nlines",
    "carriage return inside": "two\rlines",
    "tab inside": "a\tb",
    "DEL": "a\x7fb",
    "C1 control": "a\x85b",
    "escape sequence": "\x1b[31mred",
    "private use": "a\ue000b",
    "unassigned": "a\U000e0080b",
    "lone surrogate": "a\ud800b",
}
# Ordinary names in any script, with symbols and punctuation: each must be kept as typed.
VISIBLE_NAMES = {
    "check mark": "Prod ✓",
    "en dash": "Produktion \u2013 EU",
    "Chinese": "生产",
    "emoji": "Prod 🔑",
    "accented, composed": "Café",
    "accented, decomposed": "Cafe\u0301",
    "Arabic": "إنتاج",
    "digits only": "2024",
    "punctuation only": "-",
    "no-break space inside": "Prod\u00a0EU",
}


@pytest.mark.parametrize("name", INVISIBLE_NAMES.values(), ids=INVISIBLE_NAMES.keys())
def test_a_name_with_invisible_or_control_characters_is_refused(name):
    with pytest.raises(ValidationError) as excinfo:
        clean_display_name(name, max_length=100)
    assert set(excinfo.value.message_dict) == {"name"}


@pytest.mark.parametrize("name", VISIBLE_NAMES.values(), ids=VISIBLE_NAMES.keys())
def test_a_visible_name_is_accepted_as_typed(name):
    assert clean_display_name(name, max_length=100) == name


@pytest.mark.parametrize("name", VISIBLE_NAMES.values(), ids=VISIBLE_NAMES.keys())
def test_surrounding_whitespace_is_stripped(name):
    assert clean_display_name(f" \t{name}\n ", max_length=100) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is required"),
        ("   ", "is required"),
        (None, "is required"),
        (42, "is required"),
        ("a\u200bb", "control or invisible"),
        ("\u0301", "visible character"),
        ("x" * 11, "longer than 10"),
    ],
)
def test_each_refusal_says_what_is_wrong(name, message):
    with pytest.raises(ValidationError) as excinfo:
        clean_display_name(name, max_length=10)
    assert message in excinfo.value.message_dict["name"][0]


def test_a_name_of_exactly_max_length_is_accepted():
    assert clean_display_name("生" * 10, max_length=10) == "生" * 10


def test_the_error_names_the_field_it_is_given():
    with pytest.raises(ValidationError) as excinfo:
        clean_display_name("a\x00b", max_length=10, field="title")
    assert set(excinfo.value.message_dict) == {"title"}


def test_the_error_never_echoes_the_name():
    with pytest.raises(ValidationError) as excinfo:
        clean_display_name("secret-looking\u202ename", max_length=100)
    assert "secret-looking" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\x00b", True), ("a\ud800b", True), ("a\nb", True), ("a\u200bb", False), ("生产", False)],
)
def test_has_control_characters_finds_what_no_column_stores(text, expected):
    assert has_control_characters(text) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Azure OpenAI", "an Azure OpenAI"),
        ("OpenAI", "an OpenAI"),
        ("AWS Bedrock", "an AWS Bedrock"),
        ("Mistral", "a Mistral"),
        ("Google Vertex AI", "a Google Vertex AI"),
    ],
)
def test_with_article_picks_a_or_an(name, expected):
    assert with_article(name) == expected
