import pytest

from organizations import roles
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    ProviderKeyFactory,
    ProxyTokenFactory,
    UserFactory,
)


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
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
