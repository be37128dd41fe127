"""Helpers the test modules share, one copy each: addressing and reading the team pages, the
API's header, the messages and everything else kept beside the pages, and the database's state
before and after a write that must change nothing.

Fixtures live in tests/conftest.py; the role matrix the surfaces are checked against is
tests/matrix.py.
"""

import re
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection
from django.http import HttpRequest
from django.urls import reverse

from audit.models import AuditEvent
from keyvault import services
from keyvault.models import ProviderKey
from organizations.access import Access
from tests import matrix

# A proxy token anywhere in a text: `kvp_` and 43 base64url characters (docs/api.md).
TOKEN_PATTERN = re.compile(r"kvp_[A-Za-z0-9_-]{43}")

# --- The role matrix, as test cases ---------------------------------------------------------


def role_pairs(table, allowed: bool, verb: str) -> list:
    """A test case `(role, other)` for each pair of roles (highest first) whose cell in `table`,
    a role's allowed other roles like tests/matrix.py's MAY_GRANT, is `allowed`; each case is
    named `<role>-<verb>-<other>`."""
    return [
        pytest.param(role, other, id=f"{role}-{verb}-{other}")
        for role in matrix.ROLES
        for other in matrix.ROLES
        if (other in table[role]) == allowed
    ]


# --- The team pages ---------------------------------------------------------------------------


def url(name, organization, **kwargs) -> str:
    """The address of the organization's page `name`: `url("keys:edit", org, pk=key.pk)`."""
    return reverse(name, kwargs={"org_slug": organization.slug, **kwargs})


def text(response) -> str:
    """The page's body, with the apostrophes Django's escaping writes as `&#x27;` put back."""
    return response.content.decode().replace("&#x27;", "'")


def rows(html: str) -> dict[str, str]:
    """Each row of a page's table by the name it shows in bold (a key's or a token's)."""
    found = {}
    for row in re.findall(r"<tr[ >].*?</tr>", html, flags=re.S):
        name = re.search(r"<strong>(.*?)</strong>", row)
        if name:
            found[name.group(1)] = row
    return found


def field_block(html: str, name: str) -> str:
    """The `<div class="field …">` group of the form field `name`: its label, errors, input."""
    blocks = re.split(r'(?=<div class="field[ "])', html)
    found = [block for block in blocks if f'name="{name}"' in block]
    assert len(found) == 1, f"no single field block for {name}"
    return found[0]


class Tags(HTMLParser):
    """Every start tag of a page as `(tag, attributes)`, and which form controls are labelled."""

    _CONTROLS = ("input", "select", "textarea")

    def __init__(self, html):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.label_for: set[str] = set()
        # Positions in `tags` of the controls written inside a <label>.
        self._wrapped: set[int] = set()
        self._label_depth = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self._label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif self._label_depth and tag in self._CONTROLS:
            self._wrapped.add(len(self.tags))
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag == "label" and self._label_depth:
            self._label_depth -= 1

    def named(self, name) -> list[dict]:
        """The attributes of every tag whose `name` is `name`, in page order."""
        return [attrs for tag, attrs in self.tags if attrs.get("name") == name]

    def unlabelled_controls(self) -> list[dict]:
        """The attributes of every visible form control that no label names or holds."""
        missing = []
        for position, (tag, attrs) in enumerate(self.tags):
            if tag not in self._CONTROLS:
                continue
            if attrs.get("type") in ("hidden", "submit", "button", "reset", "image"):
                continue
            labelled = (
                attrs.get("id") in self.label_for
                or attrs.get("aria-label")
                or attrs.get("aria-labelledby")
                or position in self._wrapped
            )
            if not labelled:
                missing.append(attrs)
        return missing


# --- The API ---------------------------------------------------------------------------------


def bearer(token) -> dict:
    """The request header that presents `token` (a factory-made token or the raw string)."""
    raw = token if isinstance(token, str) else token.raw
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


# --- What is kept beside the pages ------------------------------------------------------------


def messages_of(client) -> list[str]:
    """The messages waiting in the client's message cookie (for the page a redirect leads to),
    decoded."""
    cookie = client.cookies.get("messages")
    if cookie is None or not cookie.value:
        return []
    return [str(m.message) for m in CookieStorage(HttpRequest())._decode(cookie.value) or []]


def _texts(value):
    """Every string in `value` as it is, a JSON document's keys and leaves included: JSON's own
    escaping (of quotes, backslashes, anything not ASCII) would hide a secret from a search."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    else:
        yield str(value)


def _fields_of(row) -> str:
    values = (getattr(row, field.attname) for field in row._meta.concrete_fields)
    return " ".join(piece for value in values for piece in _texts(value))


def stored_beside_pages(client) -> str:
    """Everything kept beside the pages, as one text to search for what must not be there: the
    admin's history, every session, every cookie of `client` (and the messages waiting in its
    message cookie, decoded) and every field of every audit event."""
    parts = [_fields_of(entry) for entry in LogEntry.objects.all()]
    parts += [" ".join(_texts(session.get_decoded())) for session in Session.objects.all()]
    parts += [f"{name}={morsel.value}" for name, morsel in client.cookies.items()]
    parts += messages_of(client)
    parts += [_fields_of(event) for event in AuditEvent.objects.all()]
    return "\n".join(parts)


# --- The database, as stored ------------------------------------------------------------------
# Read with plain SQL, past the models and their fields: what a field would hide or convert on
# the way out is compared as the database holds it.


def _select(model, where: str = "", params=()):
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} {where} ORDER BY {pk}", params)  # noqa: S608
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _key_pk(key):
    return ProviderKey._meta.pk.get_db_prep_value(key.pk, connection)


def key_row(key) -> dict:
    """Every column of a provider key's row as stored (the secret as its sealed envelope): what a
    refused or invalid change must leave exactly as it was."""
    [row] = _select(ProviderKey, "WHERE id = %s", [_key_pk(key)])
    return row


def reveal(pk) -> str:
    """The secret of the provider key `pk` as the operator opens it, read afresh."""
    return services.provider_key_reveal(
        key=ProviderKey.objects.get(pk=pk), actor=Access.operator("tests")
    )


def raw_secret_column(key) -> str:
    """The envelope a provider key's secret column holds."""
    return key_row(key)["secret"]


def write_raw_secret_column(key, envelope: str) -> None:
    """Overwrite a provider key's stored envelope, bypassing the field and the model."""
    table = connection.ops.quote_name(ProviderKey._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET secret = %s WHERE id = %s",  # noqa: S608 - metadata name
            [envelope, _key_pk(key)],
        )


# Left out: sessions, which signing in and out writes whatever else was refused, and the tables
# only migrations write (content types and permissions), read hundreds of times for nothing.
_NOT_IN_SNAPSHOTS = {"django_session", "django_content_type", "auth_permission"}


def snapshot() -> dict:
    """Every row of every table (but those above) and every email sent: equal before and after a
    refused or invalid request, command or service call, it wrote nothing anywhere."""
    state = {
        model._meta.db_table: _select(model)
        for model in apps.get_models(include_auto_created=True)
        if model._meta.db_table not in _NOT_IN_SNAPSHOTS
    }
    state["sent mail"] = [(m.subject, m.to, m.body) for m in getattr(mail, "outbox", [])]
    return state
