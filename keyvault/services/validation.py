"""Validation shared by the services."""

from django.core.exceptions import ValidationError


def collect(*cleaners):
    """Run every cleaner and raise all their field errors together, so a form or an API client
    sees every problem at once instead of one per attempt."""
    results, errors = [], {}
    for cleaner in cleaners:
        try:
            results.append(cleaner())
        except ValidationError as exc:
            results.append(None)
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return results
