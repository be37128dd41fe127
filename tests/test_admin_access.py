"""Who enters the Django admin: superusers, and owners and admins of an organization without
`is_staff`; members, viewers and deactivated people are turned away at the door.

The admin's door is the pages' sign-in (`/admin/login/` redirects there with `next`): people
sign in there, and the admin then admits or refuses them."""

import pytest
from django.test import Client

from tests import matrix
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
SIGN_IN = "/accounts/sign-in/?next=/admin/"
# docs/permissions.md: the `admin:site` scope is the owners' and admins'.
ADMITTED = matrix.in_order(matrix.ADMIN_SITE)
TURNED_AWAY = matrix.in_order(matrix.EVERYONE - matrix.ADMIN_SITE)

MODEL_URLS = [
    "/admin/keyvault/providerkey/",
    "/admin/keyvault/providerkey/add/",
    "/admin/keyvault/proxytoken/",
    "/admin/keyvault/proxytoken/add/",
    "/admin/audit/auditevent/",
    "/admin/organizations/membership/",
    "/admin/organizations/membership/add/",
    "/admin/organizations/invitation/",
    "/admin/organizations/invitation/add/",
    "/admin/organizations/organization/",
    "/admin/auth/user/",
    "/admin/auth/group/",
    "/admin/keyvault/",
    "/admin/autocomplete/?app_label=keyvault&model_name=providerkey&field_name=organization",
]


def sign_in(user, password=PASSWORD):
    client = Client()
    response = client.post(SIGN_IN, {"login": user.username, "password": password})
    return client, response


def assert_refused_by_the_admin(client):
    entering = client.get("/admin/")
    assert entering.status_code == 302
    assert entering.url.startswith(f"{LOGIN}?next=")
    door = client.get(entering.url)
    assert door.status_code == 403
    assert "form" not in (door.context or {})


def is_signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def object_urls(world):
    return [
        f"/admin/keyvault/providerkey/{world.key.pk}/change/",
        f"/admin/keyvault/proxytoken/{world.token.pk}/change/",
        f"/admin/audit/auditevent/{world.events[0].pk}/change/",
        f"/admin/organizations/organization/{world.org.pk}/change/",
        f"/admin/organizations/organization/{world.org.pk}/history/",
        f"/admin/organizations/membership/{world.memberships[-1].pk}/delete/",
        f"/admin/organizations/invitation/{world.invitation.pk}/change/",
    ]


@pytest.mark.parametrize("role", ADMITTED)
def test_owner_and_admin_without_is_staff_sign_in_and_see_the_index(tenants, role):
    user = getattr(tenants.a, role)
    assert not user.is_staff and not user.is_superuser

    client, response = sign_in(user)

    assert response.status_code == 302
    assert response.url == "/admin/"
    assert is_signed_in(client)
    index = client.get("/admin/")
    assert index.status_code == 200
    html = index.content.decode()
    for model in (
        "providerkey",
        "proxytoken",
        "auditevent",
        "membership",
        "invitation",
        "organization",
    ):
        assert f"/{model}/" in html
    # People and groups of every tenant are for platform operators only.
    assert "/admin/auth/user/" not in html
    assert "/admin/auth/group/" not in html


@pytest.mark.parametrize("role", TURNED_AWAY)
def test_member_and_viewer_signing_in_for_the_admin_are_refused_by_it(tenants, role):
    client, response = sign_in(getattr(tenants.a, role))

    assert response.status_code == 302  # signed in to the team pages, which they may use
    assert_refused_by_the_admin(client)


def test_the_admin_login_page_never_takes_a_password(tenants):
    client = Client()
    response = client.post(
        LOGIN, {"username": tenants.a.owner.username, "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302
    assert response.url.startswith("/accounts/sign-in/")
    assert not is_signed_in(client)


@pytest.mark.parametrize("role", TURNED_AWAY)
def test_member_and_viewer_signed_in_elsewhere_are_sent_to_login_from_every_admin_url(
    tenants, signed_in, role
):
    client = signed_in(getattr(tenants.a, role))

    for url in ["/admin/", *MODEL_URLS, *object_urls(tenants.a)]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(f"{LOGIN}?next="), url


def test_member_and_viewer_cannot_post_to_the_admin_either(tenants, signed_in):
    from keyvault.models import ProviderKey

    client = signed_in(tenants.a.member)
    response = client.post(
        f"/admin/keyvault/providerkey/{tenants.a.key.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert response.url.startswith(LOGIN)
    assert ProviderKey.objects.filter(pk=tenants.a.key.pk).exists()


def test_inactive_owner_is_refused_at_login_and_locked_out_of_a_session(tenants, signed_in):
    owner = tenants.a.owner
    owner.is_active = False
    owner.save()

    client, response = sign_in(owner)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not is_signed_in(client)

    # A session made before the deactivation opens nothing either.
    stale = signed_in(owner)
    assert stale.get("/admin/").status_code == 302
    assert stale.get("/admin/keyvault/providerkey/").status_code == 302


def test_wrong_password_is_refused(tenants):
    client, response = sign_in(tenants.a.owner, password="not the password")
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not is_signed_in(client)


def test_user_of_no_organization_is_refused(db):
    from tests.factories import UserFactory

    client, _response = sign_in(UserFactory())
    assert_refused_by_the_admin(client)


def test_superuser_without_is_staff_signs_in_and_sees_everything(tenants, superuser):
    client, response = sign_in(superuser)
    assert response.status_code == 302
    assert is_signed_in(client)

    index = client.get("/admin/").content.decode()
    for url in ["/admin/auth/user/", "/admin/auth/group/", "/admin/keyvault/providerkey/"]:
        assert url in index
    for url in [*MODEL_URLS[:-1], *object_urls(tenants.a), *object_urls(tenants.b)]:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", ADMITTED)
def test_org_admin_may_not_open_people_and_groups(tenants, signed_in, role):
    client = signed_in(getattr(tenants.a, role))
    for url in [
        "/admin/auth/user/",
        "/admin/auth/group/",
        f"/admin/auth/user/{tenants.b.owner.pk}/change/",
    ]:
        assert client.get(url).status_code == 403, url
    assert client.get("/admin/auth/").status_code in (403, 404)


@pytest.mark.parametrize("role", matrix.ROLES)
def test_the_door_admits_exactly_the_roles_with_the_admin_site_scope(tenants, role):
    """Every role, against the matrix: the tests above take its two halves as given."""
    admitted = role in matrix.ADMIN_SITE
    client, response = sign_in(getattr(tenants.a, role))
    assert response.status_code == 302
    assert is_signed_in(client)
    assert client.get("/admin/").status_code == (200 if admitted else 302)
    assert client.get("/admin/login/").status_code == (302 if admitted else 403)
