import pytest
from django.core.cache import cache

from keyvault.usage import recorder
from organizations import roles
from organizations.access import Access
from tests.factories import (
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProviderKeyFactory,
    ProxyTokenFactory,
    UserFactory,
)


@pytest.fixture(autouse=True)
def _fresh_shared_state():
    """Throttle counters live in the cache and usage counts in a process-wide recorder: every
    test starts and ends with neither carrying anything over."""
    cache.clear()
    recorder._take()
    yield
    cache.clear()
    recorder._take()


@pytest.fixture(scope="session", autouse=True)
def _event_listener_stops():
    """The event feed's listener (started by the first long poll on PostgreSQL) holds a
    connection to the test database: closed before the database is dropped."""
    yield
    from keyvault.event_wait import listener

    listener.stop()


@pytest.fixture
def organization(db):
    return OrganizationFactory()


@pytest.fixture
def other_organization(db):
    return OrganizationFactory()


@pytest.fixture
def member_of(db):
    """Make a user with `role` in `organization`: `member_of(org, "admin")`."""

    def make(organization, role=roles.MEMBER.id, user=None):
        return MembershipFactory(organization=organization, role=role, user=user or UserFactory())

    return make


@pytest.fixture
def actor_of(member_of, organization):
    """`actor_of(role)`: an Access for a new user holding `role` in `organization` (or in
    `org=`)."""

    def make(role, org=None):
        return Access.for_user(member_of(org or organization, role).user)

    return make


@pytest.fixture
def owner(organization, member_of):
    return member_of(organization, roles.OWNER.id).user


@pytest.fixture
def provider_key(organization):
    return ProviderKeyFactory(organization=organization)


@pytest.fixture
def make_token(organization):
    """A proxy token of `organization` (or another): `make_token("keys:read")`; the token
    itself is `.raw`."""

    def make(*scopes, organization=organization, **kwargs):
        scopes = list(scopes) or ["keys:read", "keys:secret", "keys:write"]
        return ProxyTokenFactory(organization=organization, scopes=scopes, **kwargs)

    return make


@pytest.fixture
def postgresql_only():
    """Skips the test on SQLite: it needs row locks between connections."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks between connections: PostgreSQL only")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


# --- KEK rotation, status and rekey ---------------------------------------------------------


@pytest.fixture
def old_kek_first(settings):
    """`with old_kek_first(): ...` seals what is created inside under `test-old` (the test
    settings' second KEK, made primary for the block); afterwards the default order is back."""
    from contextlib import contextmanager

    @contextmanager
    def swap():
        default = settings.KEYVAULT_KEKS
        settings.KEYVAULT_KEKS = ",".join(reversed(default.split(",")))
        try:
            yield
        finally:
            settings.KEYVAULT_KEKS = default

    return swap


@pytest.fixture
def raw_envelope(db):
    """Read (`raw_envelope(key)`) or overwrite (`raw_envelope(key, text)`) a provider key's
    stored envelope with plain SQL, bypassing the field and the model."""
    from tests.helpers import raw_secret_column, write_raw_secret_column

    def access(key, text=None):
        if text is not None:
            write_raw_secret_column(key, text)
            return text
        return raw_secret_column(key)

    return access


@pytest.fixture
def opened():
    """A spy on the one call that decrypts a key's secret: `opened.assert_not_called()`."""
    from unittest import mock

    from keyvault import sealing

    with mock.patch.object(sealing, "open_secret", wraps=sealing.open_secret) as spy:
        yield spy


@pytest.fixture
def tamper(raw_envelope):
    """Flip one bit of a stored key's ciphertext (`segment` 4) or wrapped key (2) in the
    database; the envelope stays well formed but no longer authenticates."""
    from keyvault.crypto.envelope import b64url_decode, b64url_encode

    def flip(key, segment=4):
        parts = raw_envelope(key).split(".")
        raw = bytearray(b64url_decode(parts[segment], "segment"))
        raw[len(raw) // 2] ^= 0x01
        parts[segment] = b64url_encode(bytes(raw))
        return raw_envelope(key, ".".join(parts))

    return flip


# --- The tenant-scoped Django admin ----------------------------------------------------------


@pytest.fixture
def signed_in():
    """`signed_in(user)`: a `django.test.Client` logged in as `user` with `force_login`."""
    from django.test import Client

    def make(user):
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def owner_client(owner, signed_in):
    """A client signed in as `owner`, the owner of `organization`."""
    return signed_in(owner)


@pytest.fixture
def tenants(db):
    """Two organizations seen from the admin: Alpha (A) and Bravo (B), each with an owner, an
    admin, a member, a viewer, an OpenAI key, a proxy token, a pending invitation and audit
    events. Every name in B
    contains "bravo" and nothing in A does, so a page can be searched for B's rows by text."""
    from types import SimpleNamespace

    from audit.models import AuditEvent
    from organizations import services as org_services
    from organizations.access import Access

    def world(label):
        org = OrganizationFactory(name=f"{label.title()} Org", slug=label)
        people = {
            role.id: MembershipFactory(
                organization=org,
                role=role.id,
                user=UserFactory(email=f"{label}-{role.id}@example.com"),
            )
            for role in roles.ROLES
        }
        # One membership added through the service, so the organization has a member.added event.
        joined = org_services.membership_add(
            organization=org,
            user=UserFactory(email=f"{label}-joined@example.com"),
            role=roles.VIEWER.id,
            actor=Access.operator("tests"),
        )
        key = ProviderKeyFactory(
            organization=org,
            name=f"{label}-key",
            secret=f"sk-proj-{label}SECRETabcdefghijklmnopqrstuvwxyz0123",
        )
        token = ProxyTokenFactory(organization=org, name=f"{label}-token")
        invitation = InvitationFactory(
            organization=org,
            email=f"{label}-invitee@example.com",
            invited_by=people[roles.OWNER.id].user,
        )
        return SimpleNamespace(
            org=org,
            owner=people[roles.OWNER.id].user,
            admin=people[roles.ADMIN.id].user,
            member=people[roles.MEMBER.id].user,
            viewer=people[roles.VIEWER.id].user,
            memberships=[*people.values(), joined],
            key=key,
            token=token,
            invitation=invitation,
            events=list(AuditEvent.objects.filter(organization=org)),
        )

    return SimpleNamespace(a=world("alpha"), b=world("bravo"))


@pytest.fixture
def superuser(db):
    return UserFactory(email="root@example.com", is_superuser=True)


@pytest.fixture
def form_data():
    """`form_data(response)`: the POST data a browser sends back for the admin add or change
    form rendered in `response`, unchanged; update it and post it."""

    def fields_of(form, data):
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value

    def collect(response):
        data = {}
        fields_of(response.context["adminform"].form, data)
        for inline in response.context["inline_admin_formsets"]:
            formset = inline.formset
            fields_of(formset.management_form, data)
            for form in formset.forms:
                fields_of(form, data)
        return data

    return collect
