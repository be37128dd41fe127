"""Audit metadata as people read it: lists joined, changes as "from → to", no Python syntax."""

from datetime import datetime

from django import template

from audit import action_label

register = template.Library()


@register.filter
def audit_action(code: str) -> str:
    return action_label(code)


@register.filter
def audit_value(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(audit_value(item) for item in value) or "—"
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{audit_value(value['from'])} → {audit_value(value['to'])}"
        return "; ".join(f"{name} {audit_value(item)}" for name, item in value.items())
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            pass
    return str(value)
