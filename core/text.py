"""Checks for text that people type and others read: names of keys, tokens and organizations.

A name is shown in lists, audit trails and command output, so it must be visible and one line:
control and format characters (NUL, newlines, zero-width spaces, bidirectional overrides),
private-use and unassigned code points are refused, and at least one letter, digit, mark of
punctuation or symbol must be there. NUL and lone surrogates would also fail in the database
(PostgreSQL cannot store NUL in text, no database a lone surrogate).
"""

import unicodedata

from django.core.exceptions import ValidationError

UNSTORABLE_CATEGORIES = frozenset({"Cc", "Cs"})
INVISIBLE_CATEGORIES = UNSTORABLE_CATEGORIES | {"Cf", "Co", "Cn", "Zl", "Zp"}
_VISIBLE_CLASSES = ("L", "N", "P", "S")


def has_control_characters(text: str) -> bool:
    """Whether `text` holds a character no database column can be trusted to store."""
    return any(unicodedata.category(char) in UNSTORABLE_CATEGORIES for char in text)


def clean_display_name(value, *, max_length: int, field: str = "name") -> str:
    """`value` stripped, or a `ValidationError` on `field` explaining what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({field: "A name is required."}, code="required")
    value = value.strip()
    categories = [unicodedata.category(char) for char in value]
    if any(category in INVISIBLE_CATEGORIES for category in categories):
        raise ValidationError(
            {field: "The name cannot contain control or invisible characters."}, code="invalid"
        )
    if not any(category.startswith(_VISIBLE_CLASSES) for category in categories):
        raise ValidationError({field: "The name must contain a visible character."}, code="invalid")
    if len(value) > max_length:
        raise ValidationError(
            {field: f"The name is longer than {max_length} characters."}, code="max_length"
        )
    return value


def with_article(name: str) -> str:
    """`name` after "a" or "an" by its first letter: "an Azure OpenAI", "a Mistral" (the
    providers' names are read letter by letter or start with a vowel sound when they start with
    a vowel: "an AWS Bedrock")."""
    return f"{'an' if name[:1].upper() in 'AEIOU' else 'a'} {name}"
