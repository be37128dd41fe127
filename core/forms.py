"""How a service's refusal lands on a form, for the admin and the pages alike."""

from django import forms
from django.core.exceptions import ValidationError


def add_service_errors(form: forms.Form, error: ValidationError, rename=None) -> None:
    """Put a service's `ValidationError` on `form`: beside the field it names when the form
    has that field (`rename` maps service names to form names), above the form otherwise,
    prefixed with the name it was raised for."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        name = (rename or {}).get(name, name)
        if name in form.fields:
            form.add_error(name, errors)
        else:
            form.add_error(None, [f"{name}: {' '.join(e.messages)}" for e in errors])
