"""`SecretField`: Django's field protocol, lazy decryption, no plaintext in reprs or the database,
and the binding of every ciphertext to its model, field, organization and row."""

import dataclasses
import pickle
import uuid
from io import StringIO
from unittest import mock

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django import forms
from django.core.exceptions import FieldError, ValidationError
from django.core.management import call_command
from django.db import IntegrityError, models, transaction
from django.forms import modelform_factory
from django.test.utils import isolate_apps

from keyvault import crypto, services
from keyvault.crypto import LocalKeyring
from keyvault.fields import PendingSecret, SealedSecret, SecretField
from keyvault.models import ProviderKey
from keyvault.sealing import open_secret, secret_context
from organizations.access import Access
from organizations.models import Organization
from tests.factories import ProviderKeyFactory
from tests.helpers import raw_secret_column, write_raw_secret_column

OPERATOR = Access.operator("tests")

PLAINTEXT = "sk-proj-fieldtest-Zq8wPmV3xK9yT2nB7cR4"


def keyvault_error_ids(model, field_name="secret"):
    return sorted(
        error.id
        for error in model._meta.get_field(field_name).check()
        if error.id.startswith("keyvault.")
    )


# --- deconstruct and check ------------------------------------------------------------------


def test_deconstruct_of_the_default_options_round_trips():
    field = SecretField()
    _name, path, args, kwargs = field.deconstruct()
    assert path == "keyvault.fields.SecretField"
    assert "organization_field" not in kwargs
    assert "binding_method" not in kwargs
    rebuilt = SecretField(*args, **kwargs)
    assert rebuilt.organization_field == "organization"
    assert rebuilt.binding_method is None


def test_deconstruct_keeps_organization_field_and_binding_method():
    field = SecretField(organization_field="tenant", binding_method="where_sent")
    _name, _path, args, kwargs = field.deconstruct()
    assert kwargs == {"organization_field": "tenant", "binding_method": "where_sent"}
    rebuilt = SecretField(*args, **kwargs)
    assert rebuilt.organization_field == "tenant"
    assert rebuilt.binding_method == "where_sent"
    assert rebuilt.deconstruct()[3] == kwargs


def test_provider_key_secret_field_passes_its_checks():
    assert ProviderKey._meta.get_field("secret").check() == []


def test_migrations_are_in_sync_with_the_models(db):
    """Every app's models, not keyvault's alone: a model changed without its migration fails."""
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail(f"models changed without a migration:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


@isolate_apps("keyvault")
@pytest.mark.parametrize("option", ["unique", "db_index"])
def test_check_refuses_unique_and_indexed_secrets(option):
    class Holder(models.Model):  # noqa: DJ008
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
        secret = SecretField(**{option: True})

        class Meta:
            app_label = "keyvault"

    assert keyvault_error_ids(Holder) == ["keyvault.E001"]


@isolate_apps("keyvault")
@pytest.mark.parametrize(
    "option", [{"default": "sk-shared"}, {"db_default": "sk-shared"}], ids=["default", "db_default"]
)
def test_check_refuses_a_default_secret(option):
    class Holder(models.Model):  # noqa: DJ008
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
        secret = SecretField(**option)

        class Meta:
            app_label = "keyvault"

    assert keyvault_error_ids(Holder) == ["keyvault.E002"]


@isolate_apps("keyvault")
def test_check_requires_organization_field_to_name_a_foreign_key():
    class Missing(models.Model):  # noqa: DJ008
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        secret = SecretField()

        class Meta:
            app_label = "keyvault"

    class NotForeignKey(models.Model):  # noqa: DJ008
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        tenant = models.CharField(max_length=10)
        secret = SecretField(organization_field="tenant")

        class Meta:
            app_label = "keyvault"

    assert keyvault_error_ids(Missing) == ["keyvault.E003"]
    assert keyvault_error_ids(NotForeignKey) == ["keyvault.E003"]


@isolate_apps("keyvault")
def test_check_requires_a_primary_key_assigned_before_the_first_save():
    class AutoPk(models.Model):  # noqa: DJ008
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
        secret = SecretField()

        class Meta:
            app_label = "keyvault"

    class UuidWithoutDefault(models.Model):  # noqa: DJ008
        id = models.UUIDField(primary_key=True)
        organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
        secret = SecretField()

        class Meta:
            app_label = "keyvault"

    assert keyvault_error_ids(AutoPk) == ["keyvault.E005"]
    assert keyvault_error_ids(UuidWithoutDefault) == ["keyvault.E005"]


# --- lazy decryption ------------------------------------------------------------------------


def test_listing_fifty_keys_decrypts_nothing(organization):
    for number in range(50):
        ProviderKeyFactory(organization=organization, secret=f"{PLAINTEXT}-{number:02d}")
    with (
        mock.patch.object(AESGCM, "decrypt", side_effect=AssertionError("decrypted")) as decrypt,
        mock.patch.object(
            LocalKeyring, "unwrap", side_effect=AssertionError("unwrapped")
        ) as unwrap,
        mock.patch("keyvault.crypto.envelope.open_sealed") as envelope_open,
        mock.patch("keyvault.crypto.open_sealed") as package_open,
    ):
        keys = list(ProviderKey.objects.filter(organization=organization))
        rendered = [(str(key), repr(key), repr(key.secret), key.secret.kek_id) for key in keys]
        values = list(ProviderKey.objects.values_list("secret", flat=True))
    assert len(keys) == 50
    assert len(rendered) == 50
    assert all(isinstance(key.secret, SealedSecret) for key in keys)
    assert all(isinstance(value, SealedSecret) for value in values)
    assert decrypt.call_count == unwrap.call_count == 0
    assert envelope_open.call_count == package_open.call_count == 0


def test_a_loaded_secret_is_sealed_until_a_service_reveals_it(provider_key):
    loaded = ProviderKey.objects.get(pk=provider_key.pk)
    assert isinstance(loaded.secret, SealedSecret)
    assert loaded.secret.envelope.startswith("kv2.test-primary.")
    assert loaded.secret.kek_id == loaded.kek_id == "test-primary"
    assert services.provider_key_reveal(actor=OPERATOR, key=loaded).startswith("sk-proj-test")


# --- no plaintext in repr, str, pickles -----------------------------------------------------


def test_repr_and_str_never_show_the_plaintext(organization):
    pending = PendingSecret(PLAINTEXT)
    assert PLAINTEXT not in repr(pending)
    assert PLAINTEXT not in str(pending)
    assert f"{pending}" == str(pending)

    unsaved = ProviderKey(organization=organization, provider="openai", name="n", secret=PLAINTEXT)
    assert PLAINTEXT not in repr(unsaved)
    assert PLAINTEXT not in str(unsaved)
    assert PLAINTEXT not in repr(vars(unsaved))

    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    loaded = ProviderKey.objects.get(pk=key.pk)
    for instance in (key, loaded):
        for text in (repr(instance), str(instance), repr(instance.secret), str(instance.secret)):
            assert PLAINTEXT not in text
            assert PLAINTEXT[8:] not in text
        assert instance.secret.envelope not in repr(instance.secret)


def test_pickling_a_pending_secret_raises():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(PendingSecret(PLAINTEXT))


def test_pickling_an_unsaved_instance_with_a_plaintext_raises(organization):
    unsaved = ProviderKey(organization=organization, provider="openai", name="n", secret=PLAINTEXT)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(unsaved)


def test_a_saved_instance_pickles_sealed(organization):
    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    data = pickle.dumps(ProviderKey.objects.get(pk=key.pk))
    assert PLAINTEXT.encode() not in data
    restored = pickle.loads(data)  # noqa: S301  (our own bytes)
    assert isinstance(restored.secret, SealedSecret)
    assert services.provider_key_reveal(actor=OPERATOR, key=restored) == PLAINTEXT


# --- assigning and saving -------------------------------------------------------------------


def test_assigning_text_holds_it_pending_and_save_seals_it_and_records_the_kek(organization):
    key = ProviderKey(
        organization=organization, provider="openai", name="direct", secret_hint="sk-…"
    )
    key.secret = PLAINTEXT
    assert isinstance(key.secret, PendingSecret)
    assert key.secret.plaintext == PLAINTEXT
    key.save()
    assert isinstance(key.secret, SealedSecret)
    assert key.kek_id == "test-primary"
    stored = raw_secret_column(key)
    assert stored == key.secret.envelope
    assert stored.startswith("kv2.test-primary.")
    assert PLAINTEXT not in stored
    assert (
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))
        == PLAINTEXT
    )


def test_two_saves_of_one_value_store_different_ciphertexts(organization):
    first = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    second = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    assert raw_secret_column(first) != raw_secret_column(second)


def test_a_row_saved_without_a_secret_is_refused_rather_than_sealed_empty(organization):
    key = ProviderKey(organization=organization, provider="openai", name="empty", secret_hint="")
    assert key.secret is None
    with pytest.raises(IntegrityError), transaction.atomic():
        key.save()
    assert not ProviderKey.objects.filter(pk=key.pk).exists()


def test_queryset_update_with_plain_text_raises_and_writes_nothing(provider_key):
    before = raw_secret_column(provider_key)
    with pytest.raises(TypeError, match="sealed"), transaction.atomic():
        ProviderKey.objects.filter(pk=provider_key.pk).update(secret="sk-plain-text-0123456789")
    assert raw_secret_column(provider_key) == before


def test_bulk_update_with_plain_text_raises_and_writes_nothing(organization):
    keys = [ProviderKeyFactory(organization=organization) for _ in range(2)]
    before = [raw_secret_column(key) for key in keys]
    for key in keys:
        key.secret = "sk-plain-text-0123456789"
    with pytest.raises(TypeError, match="sealed"), transaction.atomic():
        ProviderKey.objects.bulk_update(keys, ["secret"])
    assert [raw_secret_column(key) for key in keys] == before


def test_bulk_update_with_sealed_values_is_allowed(organization):
    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    loaded = ProviderKey.objects.get(pk=key.pk)
    ProviderKey.objects.bulk_update([loaded], ["secret", "name"])
    assert (
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))
        == PLAINTEXT
    )


# --- lookups --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookup",
    ["secret", "secret__exact", "secret__icontains", "secret__in", "secret__startswith"],
)
def test_lookups_other_than_isnull_raise(provider_key, lookup):
    value = [PLAINTEXT] if lookup.endswith("__in") else PLAINTEXT
    with pytest.raises(FieldError, match="isnull"):
        list(ProviderKey.objects.filter(**{lookup: value}))


def test_lookups_with_a_sealed_value_raise_too(provider_key):
    sealed = ProviderKey.objects.get(pk=provider_key.pk).secret
    with pytest.raises(FieldError):
        ProviderKey.objects.filter(secret=sealed).exists()


def test_isnull_lookup_works(provider_key):
    assert ProviderKey.objects.filter(secret__isnull=False).count() == 1
    assert ProviderKey.objects.filter(secret__isnull=True).count() == 0


# --- forms ----------------------------------------------------------------------------------


def test_formfield_is_a_password_input_that_never_renders_a_value():
    form_field = ProviderKey._meta.get_field("secret").formfield()
    assert isinstance(form_field, forms.CharField)
    assert isinstance(form_field.widget, forms.PasswordInput)
    html = form_field.widget.render("secret", PLAINTEXT)
    assert 'type="password"' in html
    assert PLAINTEXT not in html
    assert "value=" not in html
    assert form_field.clean(f"  {PLAINTEXT}\n") == PLAINTEXT


@pytest.mark.parametrize("widget", [forms.Textarea, forms.TextInput, forms.HiddenInput])
def test_no_widget_a_form_or_the_admin_picks_renders_the_stored_secret(organization, widget):
    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    loaded = ProviderKey.objects.get(pk=key.pk)
    form_class = modelform_factory(ProviderKey, fields=["secret"], widgets={"secret": widget})
    html = str(form_class(instance=loaded))
    for leaked in (PLAINTEXT, loaded.secret.envelope, "SealedSecret", "kek="):
        assert leaked not in html


def test_a_submitted_secret_is_not_rendered_back_after_a_validation_error(organization):
    form_class = modelform_factory(ProviderKey, fields=["name", "secret"])
    form = form_class(data={"name": "", "secret": PLAINTEXT})
    assert not form.is_valid()
    assert PLAINTEXT not in str(form)


def test_the_secret_form_field_changes_only_when_something_is_typed(provider_key):
    form_field = ProviderKey._meta.get_field("secret").formfield(required=False)
    sealed = ProviderKey.objects.get(pk=provider_key.pk).secret
    assert not form_field.has_changed(sealed, "")
    assert not form_field.has_changed(sealed, "   ")
    assert form_field.has_changed(sealed, "sk-new-0123456789")


def test_a_model_form_never_renders_the_stored_secret(organization):
    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    form_class = modelform_factory(ProviderKey, fields=["name", "secret"])
    html = str(form_class(instance=ProviderKey.objects.get(pk=key.pk)))
    assert 'type="password"' in html
    assert PLAINTEXT not in html
    assert "kv2." not in html
    assert "SealedSecret" not in html


# --- dumpdata / loaddata --------------------------------------------------------------------


def test_dumpdata_and_loaddata_round_trip_the_sealed_value(organization, tmp_path):
    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    envelope = raw_secret_column(key)
    dump = tmp_path / "keys.json"
    call_command("dumpdata", "keyvault.providerkey", output=str(dump), verbosity=0)
    assert PLAINTEXT not in dump.read_text()
    ProviderKey.objects.all().delete()
    call_command("loaddata", str(dump), verbosity=0)
    restored = ProviderKey.objects.get(pk=key.pk)
    assert raw_secret_column(restored) == envelope
    assert services.provider_key_reveal(actor=OPERATOR, key=restored) == PLAINTEXT


def test_to_python_keeps_an_envelope_sealed_and_makes_other_text_pending(provider_key):
    field = ProviderKey._meta.get_field("secret")
    envelope = raw_secret_column(provider_key)
    assert field.to_python(envelope) == SealedSecret(envelope)
    assert isinstance(field.to_python("kv1.not-an-envelope"), PendingSecret)
    assert field.to_python(None) is None
    with pytest.raises(ValidationError):
        field.to_python(12345)


# --- binding: a ciphertext opens only where it was sealed -----------------------------------


def test_a_ciphertext_copied_to_another_row_of_the_same_org_fails_closed(organization):
    source = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    target = ProviderKeyFactory(organization=organization, secret="sk-proj-target-0123456789abc")
    write_raw_secret_column(target, raw_secret_column(source))
    with pytest.raises(crypto.IntegrityError):
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=target.pk))


def test_a_ciphertext_copied_with_update_to_another_org_fails_closed(
    organization, other_organization
):
    source = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    target = ProviderKeyFactory(organization=other_organization)
    sealed = ProviderKey.objects.get(pk=source.pk).secret
    ProviderKey.objects.filter(pk=target.pk).update(secret=sealed)
    assert raw_secret_column(target) == raw_secret_column(source)
    with pytest.raises(crypto.IntegrityError):
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=target.pk))


def test_a_row_moved_to_another_org_no_longer_opens(organization, other_organization):
    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    ProviderKey.objects.filter(pk=key.pk).update(organization=other_organization)
    with pytest.raises(crypto.IntegrityError):
        services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk))


@pytest.mark.parametrize(
    "changes",
    [
        {"field": "other_secret"},
        {"model": "keyvault.proxytoken"},
        {"model": "organizations.organization"},
    ],
    ids=["another field", "another model", "another app's model"],
)
def test_a_ciphertext_opened_as_another_field_or_model_fails_closed(provider_key, changes):
    loaded = ProviderKey.objects.get(pk=provider_key.pk)
    context = secret_context(loaded)
    assert crypto.open_sealed(loaded.secret.envelope, context, crypto.get_keyring())
    moved = dataclasses.replace(context, **changes)
    with pytest.raises(crypto.IntegrityError):
        crypto.open_sealed(loaded.secret.envelope, moved, crypto.get_keyring())


@isolate_apps("keyvault")
def test_a_proxy_model_seals_and_opens_with_the_declaring_models_context(organization):
    class ProviderKeyProxy(ProviderKey):
        class Meta:
            proxy = True
            app_label = "keyvault"

    key = ProviderKeyFactory(organization=organization, secret=PLAINTEXT)
    through_proxy = ProviderKeyProxy.objects.get(pk=key.pk)
    assert open_secret(through_proxy) == PLAINTEXT

    through_proxy.secret = "sk-proj-sealed-through-a-proxy-0123"
    through_proxy.save()
    assert services.provider_key_reveal(actor=OPERATOR, key=ProviderKey.objects.get(pk=key.pk)) == (
        "sk-proj-sealed-through-a-proxy-0123"
    )


def test_only_a_saved_secret_can_be_opened(organization):
    unsaved = ProviderKey(organization=organization, provider="openai", name="n", secret=PLAINTEXT)
    with pytest.raises(TypeError, match="Only a saved secret"):
        open_secret(unsaved)


# --- the context is canonical, whatever spelling the ids were assigned in -------------------

ID_SPELLINGS = {
    "upper case": lambda value: str(value).upper(),
    "hex without hyphens": lambda value: value.hex,
    "upper-case hex": lambda value: value.hex.upper(),
    "braces": lambda value: "{" + str(value) + "}",
}


def _direct_key(**fields) -> ProviderKey:
    key = ProviderKey(provider="openai", name="spelled", secret_hint="sk-…", **fields)
    key.secret = PLAINTEXT
    key.save(force_insert=True)
    return key


@pytest.mark.parametrize("spell", ID_SPELLINGS.values(), ids=ID_SPELLINGS.keys())
def test_a_row_saved_with_its_id_in_another_spelling_opens_after_reloading(organization, spell):
    row_id = uuid.uuid4()
    key = _direct_key(id=spell(row_id), organization=organization)
    assert key.pk != str(row_id)  # Sealed while the instance held the other spelling.
    loaded = ProviderKey.objects.get(pk=row_id)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == PLAINTEXT
    assert services.provider_key_reveal(key=key, actor=OPERATOR) == PLAINTEXT


@pytest.mark.parametrize("spell", ID_SPELLINGS.values(), ids=ID_SPELLINGS.keys())
def test_a_row_saved_with_its_organization_id_in_another_spelling_opens_after_reloading(
    organization, spell
):
    key = _direct_key(organization_id=spell(organization.pk))
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert loaded.organization_id == organization.pk
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == PLAINTEXT


def test_a_secret_rotated_on_an_instance_with_spelled_ids_opens_after_reloading(organization):
    key = ProviderKeyFactory(organization=organization)
    spelled = ProviderKey.objects.get(pk=key.pk)
    spelled.pk = str(key.pk).upper()
    spelled.organization_id = organization.pk.hex
    spelled.secret = PLAINTEXT
    spelled.save(update_fields=["secret"])
    loaded = ProviderKey.objects.get(pk=key.pk)
    assert services.provider_key_reveal(key=loaded, actor=OPERATOR) == PLAINTEXT


def test_every_spelling_of_the_ids_gives_the_same_context(provider_key):
    canonical = secret_context(ProviderKey.objects.get(pk=provider_key.pk))
    assert canonical.row_id == str(provider_key.pk)
    assert canonical.organization_id == str(provider_key.organization_id)
    for spell in ID_SPELLINGS.values():
        spelled = ProviderKey(
            id=spell(provider_key.pk),
            organization_id=spell(provider_key.organization_id),
            provider=provider_key.provider,
            config=provider_key.config,
        )
        assert secret_context(spelled) == canonical
