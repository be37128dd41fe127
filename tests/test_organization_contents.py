"""Deleting an organization locks what keyvault keeps for it first, without organizations
importing keyvault: keyvault registers its lock when it is loaded (organizations/contents.py)."""

import pytest

from keyvault.locking import lock_organization_contents
from keyvault.models import ProviderKey, ProxyToken
from organizations import contents, services
from organizations.access import Access
from tests.factories import ProviderKeyFactory, ProxyTokenFactory

pytestmark = pytest.mark.django_db


def test_keyvault_registers_its_lock_once():
    assert contents._locks.count(lock_organization_contents) == 1
    contents.register_contents_lock(lock_organization_contents)
    assert contents._locks.count(lock_organization_contents) == 1


def test_deleting_an_organization_runs_the_registered_locks_before_deleting(
    organization, monkeypatch
):
    key = ProviderKeyFactory(organization=organization)
    token = ProxyTokenFactory(organization=organization)
    organization_id = organization.pk
    seen = []

    def spy(organization_id):
        seen.append(
            (
                organization_id,
                ProviderKey.objects.filter(pk=key.pk).exists(),
                ProxyToken.objects.filter(pk=token.pk).exists(),
            )
        )

    monkeypatch.setattr(contents, "_locks", [*contents._locks, spy])

    services.organization_delete(organization=organization, actor=Access.operator("tests"))

    assert seen == [(organization_id, True, True)]
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
