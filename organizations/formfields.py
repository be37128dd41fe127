"""Form fields for input that must reach the database intact or be refused as a form error."""

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from core.text import has_control_characters


class BoundedJSONField(forms.JSONField):
    """Django's JSON form field, refusing as form errors what it would let through as server
    errors: a document nested deeper than `max_depth` (Python's parser raises `RecursionError`
    a few thousand levels down, and the page shown again parses the input once more) and
    strings or names holding control characters or lone surrogates (`"\\ud800"` parses, but no
    database stores it and the page holding it cannot even be encoded as UTF-8; PostgreSQL's
    jsonb refuses `\\u0000`).
    """

    default_error_messages = {
        "too_deep": "The JSON is nested more than %(max_depth)s levels deep.",
        "unstorable": "The JSON contains control characters or lone surrogates.",
    }
    max_depth = 32

    def to_python(self, value):
        try:
            converted = super().to_python(value)
        except RecursionError:
            converted = None
            problem = "too_deep"
        else:
            problem = None if self.disabled else _problem_in(converted, self.max_depth)
        if problem:
            raise ValidationError(
                self.error_messages[problem], code=problem, params={"max_depth": self.max_depth}
            )
        return converted

    def bound_data(self, data, initial):
        # The page shown again after an error puts the submitted text back as typed when it
        # cannot be shown as parsed JSON.
        try:
            value = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        if self.disabled or isinstance(value, InvalidJSONInput):
            return value
        return InvalidJSONInput(data) if _problem_in(value, self.max_depth) else value


def _problem_in(value, max_depth: int) -> str | None:
    """The error code for a parsed JSON value this field refuses, or None. Walked without
    recursion: the value may be as deep as the parser allowed."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if has_control_characters(item):
                return "unstorable"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return "too_deep"
            children = [*item, *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return None
