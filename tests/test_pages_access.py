"""Who may open and submit each team page: signed out, each role, another organization's
members and objects, deactivated users, superusers, and requests without a CSRF token.

The tables below have one row per page (and per form POST) with the roles allowed to use it.
Those sets come from docs/permissions.md's matrix as tests/matrix.py writes it out, never from
the roles registry under test, so a page that drifts from the matrix fails here and a matrix
change shows in one place.

Every refused request is also checked to change nothing: the organizations, memberships,
invitations, keys, tokens, audit events and sent emails are compared before and after.
"""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.core import mail
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse

from audit.models import AuditEvent
from keyvault.models import ProviderKey, ProxyToken
from organizations import roles
from organizations import services as org_services
from organizations.access import Access
from organizations.models import Invitation, Membership
from tests import matrix
from tests.factories import (
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProviderKeyFactory,
    ProxyTokenFactory,
    UserFactory,
)
from tests.helpers import snapshot

ROLE_IDS = list(matrix.ROLES)

# Every role opens the keys, members and settings pages and may leave.
EVERYONE = matrix.EVERYONE
KEY_ADDERS = matrix.ALLOWED["key.add"]
# Any key, whoever added it.
KEY_CHANGERS = matrix.CHANGE_ANY_KEY
# A key the acting member added themselves (the world's `member_key` is the member's own).
KEY_CHANGERS_AND_CREATOR = matrix.CHANGE_OWN_KEY
TOKEN_MANAGERS = matrix.ALLOWED["token.manage"]
AUDITORS = matrix.ALLOWED["audit.read"]
MEMBER_MANAGERS = matrix.ALLOWED["member.manage"]
ORG_MANAGERS = matrix.ALLOWED["org.manage"]
# Who may manage a member holding the top role: nobody acts on a role above their own.
OWNER_MANAGERS = frozenset(role for role in matrix.ROLES if matrix.OWNER in matrix.MAY_MANAGE[role])


# --- The world ---------------------------------------------------------------------------------

OPENAI_SECRET = "sk-proj-pagesACCESSabcdefghijklmnopqrstuvwxyz0123"


def _tenant(label: str) -> SimpleNamespace:
    """One organization as conftest's `tenants` builds it (an owner, admin, member and viewer,
    a viewer who joined through the service, the operator's key and a token), plus a key the
    admin added, one the member added, a pending invitation as member and one as owner. Every
    name contains `label`."""
    org = OrganizationFactory(name=f"{label.title()} Org", slug=label)
    people = {
        role: MembershipFactory(
            organization=org, role=role, user=UserFactory(email=f"{label}-{role}@example.com")
        )
        for role in ROLE_IDS
    }
    joined = org_services.membership_add(
        organization=org,
        user=UserFactory(email=f"{label}-joined@example.com"),
        role=roles.VIEWER.id,
        actor=Access.operator("tests"),
    )
    secret = f"sk-proj-{label}SECRETabcdefghijklmnopqrstuvwxyz0123"
    tenant = SimpleNamespace(
        org=org,
        **{role: membership.user for role, membership in people.items()},
        owner_membership=people[roles.OWNER.id],
        joined=joined,
        key=ProviderKeyFactory(organization=org, name=f"{label}-key", secret=secret),
        token=ProxyTokenFactory(organization=org, name=f"{label}-token"),
    )
    tenant.other_key = ProviderKeyFactory(
        organization=org, created_by=tenant.admin, name=f"{label}-admins-key"
    )
    tenant.member_key = ProviderKeyFactory(
        organization=org, created_by=tenant.member, name=f"{label}-members-key"
    )
    tenant.invitation = InvitationFactory(
        organization=org, email=f"{label}-invitee@example.com", invited_by=tenant.owner
    )
    tenant.owner_invitation = InvitationFactory(
        organization=org,
        email=f"{label}-next-owner@example.com",
        role=roles.OWNER.id,
        invited_by=tenant.owner,
    )
    return tenant


# Session keys of the world's users, signed in once for the module (each test's changes to a
# session are rolled back with the rest).
_SESSIONS: dict[int, str] = {}


def client_for(user) -> Client:
    client = Client()
    if user.pk in _SESSIONS:
        client.cookies[django_settings.SESSION_COOKIE_NAME] = _SESSIONS[user.pk]
    else:
        client.force_login(user)
    return client


def _signed_in_session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.fixture(scope="module")
def _world_once(django_db_setup, django_db_blocker):
    """The world, built once for this module inside a transaction rolled back at its end. Each
    test runs in a savepoint within it (pytest-django's `db`), as with Django's
    `setUpTestData`: a few hundred page requests stay fast."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            world = SimpleNamespace(
                a=_tenant("alpha"),
                b=_tenant("bravo"),
                superuser=UserFactory(email="root@example.com", is_superuser=True, is_staff=True),
            )
            for tenant in (world.a, world.b):
                for user in (tenant.owner, tenant.admin, tenant.member, tenant.viewer):
                    _SESSIONS[user.pk] = _signed_in_session(user)
            _SESSIONS[world.superuser.pk] = _signed_in_session(world.superuser)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield world
    _SESSIONS.clear()
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


@pytest.fixture
def world(db, _world_once):
    """Two organizations, `a` (alpha) and `b` (bravo; everything of B contains "bravo"), and a
    superuser who belongs to neither. A copy per test, so changing an instance in one test
    cannot leak into the next (the database is rolled back after each)."""
    return copy.deepcopy(_world_once)


_CSRF_VALUE = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def page_text(response) -> str:
    """The body without its per-render CSRF token, so two renders of one page compare equal."""
    return _CSRF_VALUE.sub("", response.content.decode())


def assert_sends_to_sign_in(response, next_path):
    assert response.status_code == 302, response.status_code
    location = urlsplit(response["Location"])
    assert location.path == reverse("accounts:sign_in")
    assert parse_qs(location.query) == {"next": [next_path]}


# --- The pages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One request to one page under /o/<slug>/ and the roles that may make it."""

    name: str
    allowed: frozenset[str]
    method: str = "GET"
    # The tenant attribute whose pk the URL carries (a key, token, membership, invitation).
    target: str | None = None
    query: str = ""
    data: Callable[[SimpleNamespace], dict] | None = None
    # What the allowed roles get, and (for a POST) proof that the write happened.
    status: int = 200
    done: Callable[[SimpleNamespace, object], bool] | None = None

    def url(self, tenant, slug=None, pk=None) -> str:
        kwargs = {"org_slug": slug or tenant.org.slug}
        if self.target:
            kwargs["pk"] = pk if pk is not None else getattr(tenant, self.target).pk
        return reverse(self.name, kwargs=kwargs) + self.query

    def send(self, client, tenant, **url_kwargs):
        url = self.url(tenant, **url_kwargs)
        if self.method == "POST":
            return client.post(url, self.data(tenant) if self.data else {})
        return client.get(url)

    def __str__(self):
        target = f" [{self.target}]" if self.target else ""
        return f"{self.method} {self.name}{self.query}{target}"


def _key_named(name):
    return lambda tenant, response: ProviderKey.objects.filter(
        organization=tenant.org, name=name
    ).exists()


def _fresh(obj):
    return type(obj).objects.filter(pk=obj.pk).first()


def _key_pages(target: str, allowed: frozenset[str]) -> list[Page]:
    """Edit, rotate and delete one key (`target`): each page and its form."""

    def fresh_key(tenant):
        return _fresh(getattr(tenant, target))

    return [
        Page("keys:edit", allowed, target=target),
        Page(
            "keys:edit",
            allowed,
            "POST",
            target=target,
            data=lambda t: {"name": "Renamed on the page", "enabled": "on"},
            status=302,
            done=_key_named("Renamed on the page"),
        ),
        Page("keys:rotate", allowed, target=target),
        Page(
            "keys:rotate",
            allowed,
            "POST",
            target=target,
            data=lambda t: {"secret": OPENAI_SECRET},
            status=302,
            done=lambda t, r: fresh_key(t).version == 2,
        ),
        Page("keys:delete", allowed, target=target),
        Page(
            "keys:delete",
            allowed,
            "POST",
            target=target,
            status=302,
            done=lambda t, r: fresh_key(t) is None,
        ),
    ]


KEY_REORDERERS = matrix.ALLOWED["key.reorder"]


def _tested(target):
    return lambda t, r: _fresh(getattr(t, target)).last_checked_at is not None


PAGES = [
    # Provider keys.
    Page("keys:list", EVERYONE),
    Page("keys:overview", EVERYONE),
    Page("keys:detail", EVERYONE, target="other_key"),
    Page("keys:detail", EVERYONE, target="member_key"),
    # A test call goes nowhere here (config/settings_test.py): it is refused and recorded.
    Page(
        "keys:test", KEY_CHANGERS, "POST", target="other_key", status=302, done=_tested("other_key")
    ),
    Page(
        "keys:test",
        KEY_CHANGERS_AND_CREATOR,
        "POST",
        target="member_key",
        status=302,
        done=_tested("member_key"),
    ),
    # The pool is alpha-admins-key, alpha-key, alpha-members-key (all priority 100, by name).
    Page(
        "keys:move",
        KEY_REORDERERS,
        "POST",
        target="other_key",
        data=lambda t: {"direction": "down"},
        status=302,
        done=lambda t, r: _fresh(t.other_key).priority == 20,
    ),
    Page("keys:add", KEY_ADDERS),
    Page("keys:add", KEY_ADDERS, query="?provider=openai"),
    Page(
        "keys:add",
        KEY_ADDERS,
        "POST",
        query="?provider=openai",
        data=lambda t: {"name": "Added on the page", "secret": OPENAI_SECRET, "enabled": "on"},
        status=302,
        done=_key_named("Added on the page"),
    ),
    *_key_pages("other_key", KEY_CHANGERS),  # the admin's key
    *_key_pages("member_key", KEY_CHANGERS_AND_CREATOR),  # the member's own key
    # Proxy tokens.
    Page("tokens:list", TOKEN_MANAGERS),
    Page("tokens:usage", TOKEN_MANAGERS),
    Page("tokens:create", TOKEN_MANAGERS),
    Page(
        "tokens:create",
        TOKEN_MANAGERS,
        "POST",
        data=lambda t: {"name": "made-on-the-page", "scopes": ["keys:read"]},
        # The new token is shown on this response, once, rather than after a redirect.
        status=200,
        done=lambda t, r: (
            ProxyToken.objects.filter(name="made-on-the-page").exists() and b"kvp_" in r.content
        ),
    ),
    Page("tokens:revoke", TOKEN_MANAGERS, target="token"),
    Page(
        "tokens:revoke",
        TOKEN_MANAGERS,
        "POST",
        target="token",
        status=302,
        done=lambda t, r: _fresh(t.token).revoked_at is not None,
    ),
    # Audit log.
    Page("audit:list", AUDITORS),
    # Members and invitations.
    Page("members:list", EVERYONE),
    Page("members:invite", MEMBER_MANAGERS),
    Page(
        "members:invite",
        MEMBER_MANAGERS,
        "POST",
        data=lambda t: {"email": "newcomer@example.com", "role": roles.MEMBER.id},
        status=302,
        done=lambda t, r: (
            Invitation.objects.filter(organization=t.org, email="newcomer@example.com").exists()
            and [m.to for m in mail.outbox] == [["newcomer@example.com"]]
        ),
    ),
    Page(
        "members:change_role",
        MEMBER_MANAGERS,
        "POST",
        target="joined",
        data=lambda t: {f"m{t.joined.pk}-role": roles.MEMBER.id},
        status=302,
        done=lambda t, r: _fresh(t.joined).role == roles.MEMBER.id,
    ),
    Page("members:remove", MEMBER_MANAGERS, target="joined"),
    Page(
        "members:remove",
        MEMBER_MANAGERS,
        "POST",
        target="joined",
        status=302,
        done=lambda t, r: _fresh(t.joined) is None,
    ),
    Page(
        "members:invitation_revoke",
        MEMBER_MANAGERS,
        "POST",
        target="invitation",
        status=302,
        done=lambda t, r: _fresh(t.invitation).revoked_at is not None,
    ),
    # Settings: everyone reads them; only owners rename or delete.
    Page("settings:index", EVERYONE),
    Page(
        "settings:index",
        ORG_MANAGERS,
        "POST",
        data=lambda t: {"name": "Renamed on the page"},
        status=302,
        done=lambda t, r: _fresh(t.org).name == "Renamed on the page",
    ),
    Page("settings:delete", ORG_MANAGERS),
    # Leaving is for everyone (its POST, and the last-owner rule, in test_pages_members.py).
    Page("settings:leave", EVERYONE),
    Page(
        "settings:delete",
        ORG_MANAGERS,
        "POST",
        data=lambda t: {"confirmation": t.org.slug},
        status=302,
        done=lambda t, r: _fresh(t.org) is None,
    ),
]

# Pages that name one object of the organization in their URL.
OBJECT_PAGES = [page for page in PAGES if page.target]
POST_ONLY = {"members:change_role", "members:invitation_revoke", "keys:test", "keys:move"}


def _org_scoped_url_names():
    from config.urls import organization_scoped

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern):
                yield f"{namespace}:{pattern.name}" if namespace else pattern.name

    return set(walk(organization_scoped))


def test_every_organization_page_is_in_the_table():
    """A new page under /o/<slug>/ must get a row (the home redirect has its own test)."""
    assert _org_scoped_url_names() == {page.name for page in PAGES} | {"organization_home"}
    posted = {page.name for page in PAGES if page.method == "POST"}
    forms = {"keys:add", "keys:edit", "keys:rotate", "keys:delete", "tokens:create"}
    forms |= {"tokens:revoke", "members:invite", "members:remove", "settings:index"}
    forms |= {"settings:delete"} | POST_ONLY
    assert forms <= posted


def _role_cases(pages):
    return [pytest.param(page, role, id=f"{page}-{role}") for page in pages for role in ROLE_IDS]


# --- 1. Signed out ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_signed_out_is_sent_to_sign_in(world, page):
    tenant = world.a
    before = snapshot()
    response = page.send(Client(), tenant)
    assert_sends_to_sign_in(response, page.url(tenant))
    assert snapshot() == before


@pytest.mark.parametrize("name", ["orgs:list", "orgs:create", "accounts:password_change"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_signed_out_account_pages_send_to_sign_in(world, name, method):
    before = snapshot()
    url = reverse(name)
    data = {"name": "Sneaky", "old_password": "x", "new_password1": "y", "new_password2": "y"}
    response = getattr(Client(), method)(url, data if method == "post" else None)
    assert_sends_to_sign_in(response, url)
    assert snapshot() == before


@pytest.mark.parametrize("slug", ["alpha", "no-such-org"])
def test_organization_home_redirects_to_its_keys_page_which_asks_to_sign_in(world, slug):
    """/o/<slug>/ is a plain redirect, the same for any slug; the keys page then decides."""
    response = Client().get(reverse("organization_home", kwargs={"org_slug": slug}))
    keys = reverse("keys:list", kwargs={"org_slug": slug})
    assert response.status_code == 302
    assert response["Location"] == keys
    assert_sends_to_sign_in(Client().get(keys), keys)


@pytest.mark.parametrize(
    "name", ["home", "accounts:sign_in", "accounts:sign_up", "accounts:password_reset"]
)
def test_signed_out_can_reach_the_public_pages(db, name):
    assert Client().get(reverse(name)).status_code == 200


def test_signed_out_can_open_an_invitation(world):
    invitation = InvitationFactory(organization=world.a.org, email="brand-new@example.com")
    # The emailed link moves its token into the session, then shows a token-free page.
    response = Client().get(reverse("invitations:open", args=[invitation.raw]), follow=True)
    assert response.status_code == 200
    assert response.redirect_chain == [(reverse("invitations:accept"), 302)]
    assert b'name="password1"' in response.content


# --- 2. Every page, every role ----------------------------------------------------------------


@pytest.mark.parametrize(("page", "role"), _role_cases(PAGES))
def test_each_role_gets_exactly_the_pages_the_matrix_allows(world, page, role):
    tenant = world.a
    before, events_before = snapshot(), AuditEvent.objects.count()
    response = page.send(client_for(getattr(tenant, role)), tenant)
    if role in page.allowed:
        assert response.status_code == page.status, response.content[:2000]
        if page.done is not None:
            assert page.done(tenant, response)
            assert AuditEvent.objects.count() > events_before, "the write left no audit event"
        else:
            assert snapshot() == before
    else:
        assert response.status_code == 403
        assert snapshot() == before


@pytest.mark.parametrize("role", ROLE_IDS)
def test_organization_home_redirects_every_role_to_the_keys(world, role):
    tenant = world.a
    response = client_for(getattr(tenant, role)).get(
        reverse("organization_home", kwargs={"org_slug": tenant.org.slug})
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("keys:list", kwargs={"org_slug": tenant.org.slug})


@pytest.mark.parametrize("name", sorted(POST_ONLY))
def test_post_only_pages_refuse_get_before_anything_else(world, name):
    """405 for anyone, member or not, existing organization or not: no oracle either way."""
    page = next(p for p in PAGES if p.name == name)
    for client, slug in (
        (client_for(world.a.owner), "alpha"),
        (client_for(world.a.owner), "bravo"),
        (Client(), "no-such-org"),
    ):
        assert client.get(page.url(world.a, slug=slug)).status_code == 405


# --- 3. Object rules --------------------------------------------------------------------------

KEY_PAGES = [page for page in PAGES if page.target == "other_key" and page.name != "keys:detail"]


@pytest.mark.parametrize("page", KEY_PAGES, ids=lambda page: f"{page.method} {page.name}")
@pytest.mark.parametrize("creator", ["admin", "operator"])
def test_member_cannot_touch_a_key_someone_else_added(world, page, creator):
    """The table covers the admin's key; a key the operator added (no creator) is refused
    to a member too, rather than being treated as everyone's."""
    tenant = world.a
    key = tenant.other_key if creator == "admin" else tenant.key
    assert key.created_by_id != tenant.member.pk
    before = snapshot()
    response = page.send(client_for(tenant.member), tenant, pk=key.pk)
    assert response.status_code == 403
    assert snapshot() == before


def test_admin_cannot_change_an_owners_role(world):
    tenant = world.a
    owner = tenant.owner_membership
    before = snapshot()
    response = client_for(tenant.admin).post(
        reverse("members:change_role", kwargs={"org_slug": "alpha", "pk": owner.pk}),
        {f"m{owner.pk}-role": roles.ADMIN.id},
    )
    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_admin_cannot_remove_an_owner(world, method):
    tenant = world.a
    url = reverse("members:remove", kwargs={"org_slug": "alpha", "pk": tenant.owner_membership.pk})
    before = snapshot()
    assert getattr(client_for(tenant.admin), method)(url).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("name", ["members:list", "members:invite"])
@pytest.mark.parametrize("role", sorted(MEMBER_MANAGERS))
def test_owner_is_offered_only_to_roles_that_may_grant_it(world, name, role):
    response = client_for(getattr(world.a, role)).get(reverse(name, kwargs={"org_slug": "alpha"}))
    assert response.status_code == 200
    offered = set(re.findall(r'<option value="(\w+)"', response.content.decode()))
    assert offered == matrix.MAY_GRANT[role]
    assert (roles.OWNER.id in offered) == (role in ORG_MANAGERS)


def test_admin_posting_an_owner_invitation_is_refused(world):
    tenant = world.a
    before = snapshot()
    response = client_for(tenant.admin).post(
        reverse("members:invite", kwargs={"org_slug": "alpha"}),
        {"email": "would-be-owner@example.com", "role": roles.OWNER.id},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["role"]
    assert snapshot() == before


def test_admin_posting_an_owner_role_is_refused(world):
    tenant = world.a
    target = tenant.joined
    before = snapshot()
    response = client_for(tenant.admin).post(
        reverse("members:change_role", kwargs={"org_slug": "alpha", "pk": target.pk}),
        {f"m{target.pk}-role": roles.OWNER.id},
    )
    assert response.status_code == 302
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["error"]
    assert snapshot() == before


def test_admin_cannot_revoke_an_owners_invitation(world):
    tenant = world.a
    before = snapshot()
    response = client_for(tenant.admin).post(
        reverse(
            "members:invitation_revoke",
            kwargs={"org_slug": "alpha", "pk": tenant.owner_invitation.pk},
        )
    )
    assert response.status_code == 403
    assert snapshot() == before


def test_admin_cannot_replace_an_owners_invitation_by_inviting_again(world):
    """Inviting an address again revokes its pending invitation; an admin may not revoke one
    to owner, so the new invitation is refused (the service's PermissionDenied: a 403 page)."""
    tenant = world.a
    before = snapshot()
    response = client_for(tenant.admin).post(
        reverse("members:invite", kwargs={"org_slug": "alpha"}),
        {"email": tenant.owner_invitation.email, "role": roles.MEMBER.id},
    )
    assert response.status_code == 403
    assert snapshot() == before


def test_the_last_owner_cannot_demote_themselves(world):
    tenant = world.a
    mine = tenant.owner_membership
    before = snapshot()
    response = client_for(tenant.owner).post(
        reverse("members:change_role", kwargs={"org_slug": "alpha", "pk": mine.pk}),
        {f"m{mine.pk}-role": roles.ADMIN.id},
    )
    assert response.status_code == 302
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert errors and "owner" in errors[0]
    assert snapshot() == before


def test_the_last_owner_cannot_leave(world):
    tenant = world.a
    before = snapshot()
    response = client_for(tenant.owner).post(
        reverse("members:remove", kwargs={"org_slug": "alpha", "pk": tenant.owner_membership.pk})
    )
    assert response.status_code == 400
    assert b"at least one owner" in response.content
    assert snapshot() == before


# --- 4. Another organization ------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_another_organizations_pages_answer_404_like_a_missing_one(world, page):
    """A's owner on B's pages, with B's own object ids: the same 404 as a slug that does not
    exist, and nothing written."""
    outsider = client_for(world.a.owner)
    before = snapshot()
    response = page.send(outsider, world.b)
    assert response.status_code == 404
    assert snapshot() == before
    missing = page.send(outsider, world.b, slug="no-such-org")
    assert missing.status_code == 404
    assert page_text(response) == page_text(missing)
    assert "bravo" not in page_text(response).lower()


LIST_PAGES = [page for page in PAGES if page.method == "GET" and not page.target]


@pytest.mark.parametrize("page", LIST_PAGES, ids=str)
def test_ones_own_pages_show_nothing_of_another_organization(world, page):
    response = page.send(client_for(world.a.owner), world.a)
    assert response.status_code == 200
    assert "bravo" not in page_text(response).lower()


def test_another_organizations_home_redirects_then_answers_404(world):
    response = client_for(world.a.owner).get(
        reverse("organization_home", kwargs={"org_slug": "bravo"}), follow=True
    )
    assert response.status_code == 404


def _name_of(obj) -> str:
    if isinstance(obj, Membership):
        return obj.user.email
    return getattr(obj, "name", None) or obj.email


@pytest.mark.parametrize(("page", "role"), _role_cases(OBJECT_PAGES))
def test_another_organizations_object_under_ones_own_slug_answers_like_a_missing_one(
    world, page, role
):
    """A's members, on A's pages, naming B's key / token / membership / invitation: exactly
    the answer for an id that exists nowhere (404, or 403 for a role the page refuses whatever
    the id), naming nothing of B, and B's object untouched. For A's owner, it is a 404."""
    own = client_for(getattr(world.a, role))
    theirs = getattr(world.b, page.target)
    before = snapshot()
    response = page.send(own, world.a, pk=theirs.pk)
    assert response.status_code in (403, 404)
    if role == roles.OWNER.id:
        assert response.status_code == 404
    assert snapshot() == before
    body = page_text(response)
    assert world.b.org.name not in body
    assert _name_of(theirs) not in body
    assert "bravo" not in body.lower()
    nowhere = 2**31 - 1 if isinstance(theirs.pk, int) else "00000000-0000-4000-8000-000000000000"
    missing = page.send(own, world.a, pk=nowhere)
    assert missing.status_code == response.status_code
    assert page_text(missing) == body


# --- 5. Buttons a role may not use are not shown ----------------------------------------------


@dataclass(frozen=True)
class Control:
    """A link or form on `page` that only `visible_to` may see."""

    label: str
    page: str
    visible_to: frozenset[str]
    # The markup that shows the control, for the tenant.
    marker: Callable[[SimpleNamespace], str]
    # The tenant attribute whose pk the page's URL carries.
    target: str | None = None

    def __str__(self):
        return self.label


def _href(name, target=None):
    def marker(tenant):
        kwargs = {"org_slug": tenant.org.slug}
        if target:
            kwargs["pk"] = getattr(tenant, target).pk
        return f'href="{reverse(name, kwargs=kwargs)}"'

    return marker


def _action(name, target):
    def marker(tenant):
        kwargs = {"org_slug": tenant.org.slug, "pk": getattr(tenant, target).pk}
        return f'action="{reverse(name, kwargs=kwargs)}"'

    return marker


def _role_form(target):
    def marker(tenant):
        kwargs = {"org_slug": tenant.org.slug, "pk": getattr(tenant, target).pk}
        return f'action="{reverse("members:change_role", kwargs=kwargs)}"'

    return marker


CONTROLS = [
    Control("Add a key", "keys:list", KEY_ADDERS, _href("keys:add")),
    *(
        Control(f"{verb} {whose} key", "keys:list", visible, _href(f"keys:{verb}", target))
        for whose, target, visible in (
            ("the admin's", "other_key", KEY_CHANGERS),
            ("the operator's", "key", KEY_CHANGERS),
            ("the member's", "member_key", KEY_CHANGERS_AND_CREATOR),
        )
        for verb in ("edit", "rotate", "delete")
    ),
    Control("Proxy tokens tab", "keys:list", TOKEN_MANAGERS, _href("tokens:list")),
    Control("Audit log tab", "keys:list", AUDITORS, _href("audit:list")),
    Control("Proxy tokens tab on settings", "settings:index", TOKEN_MANAGERS, _href("tokens:list")),
    Control("Audit log tab on settings", "settings:index", AUDITORS, _href("audit:list")),
    Control("Invite someone", "members:list", MEMBER_MANAGERS, _href("members:invite")),
    Control("Pending invitations", "members:list", MEMBER_MANAGERS, lambda t: t.invitation.email),
    Control(
        "Revoke an invitation",
        "members:list",
        MEMBER_MANAGERS,
        lambda t: reverse(
            "members:invitation_revoke", kwargs={"org_slug": t.org.slug, "pk": t.invitation.pk}
        ),
    ),
    Control(
        "Revoke the owner's invitation",
        "members:list",
        OWNER_MANAGERS,
        lambda t: reverse(
            "members:invitation_revoke",
            kwargs={"org_slug": t.org.slug, "pk": t.owner_invitation.pk},
        ),
    ),
    Control("Change a viewer's role", "members:list", MEMBER_MANAGERS, _role_form("joined")),
    Control("Remove a viewer", "members:list", MEMBER_MANAGERS, _href("members:remove", "joined")),
    # The tenant's owner is its only owner: nobody is offered a change the services would
    # refuse (with a second owner, owners are: tests/test_pages_members.py).
    Control("Change the owner's role", "members:list", frozenset(), _role_form("owner_membership")),
    Control(
        "Remove the owner",
        "members:list",
        frozenset(),
        _href("members:remove", "owner_membership"),
    ),
    Control("Rename form", "settings:index", ORG_MANAGERS, lambda t: 'name="name"'),
    # Key health: everyone sees it; testing follows the key's change rule; reordering is the
    # whole pool's, for those who change any key.
    Control("Health badges", "keys:list", EVERYONE, lambda t: ">unchecked</span>"),
    Control("Overview link", "keys:list", EVERYONE, _href("keys:overview")),
    Control("Detail link", "keys:list", EVERYONE, _href("keys:detail", "member_key")),
    Control("Reorder the pool", "keys:list", KEY_REORDERERS, _action("keys:move", "other_key")),
    Control(
        "Health on the key's page", "keys:detail", EVERYONE, lambda t: ">unchecked</span>", "key"
    ),
    Control(
        "Test the admin's key",
        "keys:detail",
        KEY_CHANGERS,
        _action("keys:test", "other_key"),
        "other_key",
    ),
    Control(
        "Test the member's key",
        "keys:detail",
        KEY_CHANGERS_AND_CREATOR,
        _action("keys:test", "member_key"),
        "member_key",
    ),
    Control("Delete organization", "settings:index", ORG_MANAGERS, _href("settings:delete")),
]


@pytest.mark.parametrize(
    ("control", "role"),
    [
        pytest.param(control, role, id=f"{control}-{role}")
        for control in CONTROLS
        for role in ROLE_IDS
    ],
)
def test_controls_are_shown_only_to_roles_that_may_use_them(world, control, role):
    tenant = world.a
    kwargs = {"org_slug": tenant.org.slug}
    if control.target:
        kwargs["pk"] = getattr(tenant, control.target).pk
    response = client_for(getattr(tenant, role)).get(reverse(control.page, kwargs=kwargs))
    assert response.status_code == 200
    shown = control.marker(tenant) in response.content.decode()
    assert shown == (role in control.visible_to)


@pytest.mark.parametrize("role", sorted(EVERYONE - KEY_ADDERS))
def test_an_empty_key_list_offers_no_first_key_to_a_viewer(world, role):
    ProviderKey.objects.filter(organization=world.a.org).delete()
    response = client_for(getattr(world.a, role)).get(
        reverse("keys:list", kwargs={"org_slug": "alpha"})
    )
    assert response.status_code == 200
    assert reverse("keys:add", kwargs={"org_slug": "alpha"}) not in response.content.decode()


# --- 6. Deactivated users and superusers ------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_a_deactivated_users_session_opens_nothing(world, page):
    """Django's ModelBackend drops an inactive user's session: they are signed out."""
    tenant = world.a
    client = client_for(tenant.owner)
    tenant.owner.is_active = False
    tenant.owner.save(update_fields=["is_active"])
    before = snapshot()
    assert_sends_to_sign_in(page.send(client, tenant), page.url(tenant))
    assert snapshot() == before


def test_a_deactivated_user_is_refused_even_if_a_backend_keeps_them(world, settings):
    """With a backend that lets inactive users through, the membership lookup still 404s."""
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    tenant = world.a
    client = Client()
    client.force_login(tenant.owner)
    tenant.owner.is_active = False
    tenant.owner.save(update_fields=["is_active"])
    assert client.get(reverse("keys:list", kwargs={"org_slug": "alpha"})).status_code == 404


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_a_superuser_who_is_not_a_member_gets_404(world, page):
    """The pages are for members; the operator uses the admin. A superuser is no member."""
    before = snapshot()
    assert page.send(client_for(world.superuser), world.a).status_code == 404
    assert snapshot() == before


# --- 7. CSRF ----------------------------------------------------------------------------------

CSRF_FORMS = [
    pytest.param(
        "keys:add",
        "?provider=openai",
        {"name": "csrf-key", "secret": OPENAI_SECRET, "enabled": "on"},
        id="key add",
    ),
    pytest.param("tokens:create", "", {"name": "csrf-token", "scopes": ["keys:read"]}, id="token"),
    pytest.param(
        "members:invite", "", {"email": "csrf@example.com", "role": "member"}, id="invite"
    ),
]


@pytest.mark.parametrize(("name", "query", "data"), CSRF_FORMS)
def test_a_post_without_csrf_token_is_refused(world, name, query, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.a.owner)
    url = reverse(name, kwargs={"org_slug": "alpha"}) + query
    client.get(url)  # the CSRF cookie is set; only the form token is missing
    before = snapshot()
    response = client.post(url, data)
    assert response.status_code == 403
    assert b"The form expired" in response.content  # templates/403_csrf.html, not a role refusal
    assert snapshot() == before


@pytest.mark.parametrize(("name", "query", "data"), CSRF_FORMS)
def test_the_same_post_with_the_forms_csrf_token_goes_through(world, name, query, data):
    """Control for the test above: the refusal was the missing token's doing."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.a.owner)
    url = reverse(name, kwargs={"org_slug": "alpha"}) + query
    form = client.get(url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    before = snapshot()
    response = client.post(url, {**data, "csrfmiddlewaretoken": token})
    assert response.status_code in (200, 302)
    assert snapshot() != before
