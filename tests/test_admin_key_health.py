"""The admin's connection test: a Test button on a key's change page and an action on the list,
for those who may change the key, in the organizations they administer; priority and health
shown and editable like the rest."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from audit import AuditAction
from audit.models import AuditEvent
from keyvault.models import ProviderKey
from tests.helpers import messages_of, snapshot, stored_beside_pages

pytestmark = pytest.mark.django_db

KEYS = "/admin/keyvault/providerkey/"


def was_tested(key) -> bool:
    return ProviderKey.objects.get(pk=key.pk).last_checked_at is not None


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_the_change_page_has_a_test_button_that_tests(tenants, signed_in, role):
    a = tenants.a
    client = signed_in(getattr(a, role))
    page = client.get(f"{KEYS}{a.key.pk}/change/")
    assert page.status_code == 200
    assert f'action="{KEYS}{a.key.pk}/test/"' in page.content.decode()
    response = client.post(f"{KEYS}{a.key.pk}/test/")
    assert response.status_code == 302
    assert response["Location"] == f"{KEYS}{a.key.pk}/change/"
    assert was_tested(a.key)
    event = AuditEvent.objects.get(action=AuditAction.KEY_TESTED)
    assert event.actor_user == getattr(a, role)
    assert any("failed. Not called" in m for m in messages_of(client))
    assert "alphaSECRET" not in stored_beside_pages(client)


def test_a_get_of_the_test_address_tests_nothing(tenants, signed_in):
    a = tenants.a
    response = signed_in(a.owner).get(f"{KEYS}{a.key.pk}/test/")
    assert response.status_code == 405
    assert not was_tested(a.key)


def test_another_organizations_key_cannot_be_tested_from_the_admin(tenants, signed_in):
    before = snapshot()
    response = signed_in(tenants.a.owner).post(f"{KEYS}{tenants.b.key.pk}/test/")
    assert response.status_code in (302, 404)
    assert not was_tested(tenants.b.key)
    assert AuditEvent.objects.filter(action=AuditAction.KEY_TESTED).count() == 0
    assert snapshot()["keyvault_providerkey"] == before["keyvault_providerkey"]


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_who_cannot_enter_the_admin_cannot_test(tenants, signed_in, role):
    a = tenants.a
    signed_in(getattr(a, role)).post(f"{KEYS}{a.key.pk}/test/")
    assert not was_tested(a.key)


def test_the_list_action_tests_the_selected_keys(tenants, signed_in):
    a = tenants.a
    client = signed_in(a.admin)
    response = client.post(
        KEYS, {"action": "test_keys", ACTION_CHECKBOX_NAME: [str(a.key.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert was_tested(a.key)
    assert not was_tested(tenants.b.key)


def test_the_superuser_tests_from_the_admin(tenants, superuser, signed_in):
    superuser.is_staff = True
    superuser.save()
    response = signed_in(superuser).post(f"{KEYS}{tenants.b.key.pk}/test/")
    assert response.status_code == 302
    assert was_tested(tenants.b.key)


def test_priority_is_edited_through_the_services(tenants, signed_in):
    a = tenants.a
    client = signed_in(a.owner)
    page = client.get(f"{KEYS}{a.key.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(priority="7", config="{}", new_secret="")
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(f"{KEYS}{a.key.pk}/change/", data)
    assert response.status_code == 302, response.content[:3000]
    assert ProviderKey.objects.get(pk=a.key.pk).priority == 7
    event = AuditEvent.objects.filter(action=AuditAction.KEY_UPDATED).latest("id")
    assert event.metadata["changes"]["priority"] == {"from": 100, "to": 7}
