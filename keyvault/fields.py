"""`SecretField`: a model field that stores a secret as an encrypted envelope.

The field is Django's field protocol and nothing more, as `JSONField` is for JSON: reading a
row decrypts nothing (the attribute holds a `SealedSecret`, the envelope text); assigning a
string holds it as a `PendingSecret` until `save()` seals it, through `keyvault.sealing`, which
owns every use of a key (sealing, opening, re-wrapping) and the context a secret is bound to.
Neither value ever shows plaintext in `repr` or `str`, and a plaintext can never reach the
database through `update()`, `bulk_update()` or a lookup.

`EnvelopeKekId` reads an envelope's KEK id in SQL, for a column the database computes.
"""

from django import forms
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, FieldError, ValidationError
from django.db import NotSupportedError, models
from django.db.models.query_utils import DeferredAttribute

from keyvault import crypto, sealing
from keyvault.crypto.envelope import SEPARATOR
from keyvault.sealing import PendingSecret, SealedSecret

__all__ = ["EnvelopeKekId", "PendingSecret", "SealedSecret", "SecretField", "SecretFormField"]


def _is_envelope(text: str) -> bool:
    try:
        crypto.Envelope.decode(text)
    except crypto.MalformedEnvelopeError:
        return False
    return True


class SecretFormField(forms.CharField):
    """A form field for a secret that never puts a value back into the page.

    Not the stored value (its envelope, or the repr of a sealed object, would be resubmitted
    and sealed as if it were the secret) and not a submitted one after a validation error.
    This holds whatever widget a form or the admin chooses, not only the password input.
    """

    def prepare_value(self, value):
        return ""

    def has_changed(self, initial, data):
        # Nothing is shown, so the field changed exactly when something was typed into it.
        return bool(self.to_python(data))


class SecretDescriptor(DeferredAttribute):
    """Wraps an assigned string in `PendingSecret`, so plaintext is never a bare attribute."""

    def __set__(self, instance, value):
        if isinstance(value, str):
            value = PendingSecret(value)
        instance.__dict__[self.field.attname] = value


class SecretField(models.TextField):
    description = "An envelope-encrypted secret"
    descriptor_class = SecretDescriptor

    def __init__(
        self,
        *args,
        organization_field="organization",
        binding_method=None,
        **kwargs,
    ):
        self.organization_field = organization_field
        # The name of a model method returning the text the secret is bound to (see
        # `keyvault.crypto.context`): changing what it returns makes the stored value unopenable
        # until the secret is sealed again, which is the point.
        self.binding_method = binding_method
        super().__init__(*args, **kwargs)

    def check(self, **kwargs):
        return [
            *super().check(**kwargs),
            *self._check_options(),
            *self._check_organization_field(),
            *self._check_binding_method(),
            *self._check_primary_key_default(),
        ]

    def _check_options(self):
        errors = []
        for option in ("primary_key", "unique", "db_index"):
            if getattr(self, option):
                errors.append(
                    checks.Error(
                        f"SecretField does not support {option}=True: ciphertexts are random "
                        "and cannot be compared or indexed.",
                        obj=self,
                        id="keyvault.E001",
                    )
                )
        if self.has_default() or self.has_db_default():
            errors.append(
                checks.Error(
                    "SecretField does not support a default: a default would be a shared, "
                    "unencrypted secret in the migration files.",
                    obj=self,
                    id="keyvault.E002",
                )
            )
        return errors

    def _check_organization_field(self):
        try:
            field = self.model._meta.get_field(self.organization_field)
        except FieldDoesNotExist:
            field = None
        if field is None or not isinstance(field, models.ForeignKey):
            return [
                checks.Error(
                    f"organization_field {self.organization_field!r} must name a ForeignKey "
                    "on the model: it binds each ciphertext to its organization.",
                    obj=self,
                    id="keyvault.E003",
                )
            ]
        return []

    def _check_binding_method(self):
        if self.binding_method is None or callable(getattr(self.model, self.binding_method, None)):
            return []
        return [
            checks.Error(
                f"binding_method {self.binding_method!r} must name a method of the model: it "
                "gives the text each secret is bound to.",
                obj=self,
                id="keyvault.E006",
            )
        ]

    def _check_primary_key_default(self):
        if not self.model._meta.pk.has_default():
            return [
                checks.Error(
                    "A model with a SecretField needs a primary key with a default (such as "
                    "uuid4): the row id is part of the associated data before the first save.",
                    obj=self,
                    id="keyvault.E005",
                )
            ]
        return []

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.organization_field != "organization":
            kwargs["organization_field"] = self.organization_field
        if self.binding_method is not None:
            kwargs["binding_method"] = self.binding_method
        return name, path, args, kwargs

    def get_default(self):
        # Django's default for a text column is "", which would be sealed at save as an empty
        # secret. With no default, a row saved without a secret fails on NOT NULL instead.
        return None

    def from_db_value(self, value, expression, connection):
        return None if value is None else SealedSecret(value)

    def to_python(self, value):
        if value is None or isinstance(value, SealedSecret | PendingSecret):
            return value
        if isinstance(value, str):
            # Deserializers (loaddata) hand over the stored envelope that `value_to_string`
            # dumped: it must stay sealed, not be sealed again as if it were the plaintext.
            # Assignments never come through here (the descriptor makes them pending).
            if _is_envelope(value):
                return SealedSecret(value)
            return PendingSecret(value)
        raise ValidationError("A secret must be text.", code="invalid")

    def get_prep_value(self, value):
        if value is None:
            return None
        if isinstance(value, SealedSecret):
            return value.envelope
        # Only `save()` seals; `update()`, `bulk_update()` with a plain string or a lookup would
        # otherwise write or send plaintext to the database.
        raise TypeError(
            "A SecretField value must be sealed before it reaches the database: assign the "
            "plaintext to the instance and call save()."
        )

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if isinstance(value, PendingSecret):
            value = sealing.seal_secret(model_instance, value.plaintext, field=self.name)
            setattr(model_instance, self.attname, value)
        return value

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            raise FieldError(
                f"SecretField {self.name!r} supports only the 'isnull' lookup: encrypted "
                "values cannot be searched or compared."
            )
        return super().get_lookup(lookup_name)

    def get_transform(self, lookup_name):
        return None

    def formfield(self, **kwargs):
        defaults = {
            "form_class": SecretFormField,
            "widget": forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            "strip": True,
        }
        defaults.update(kwargs)
        return super(models.TextField, self).formfield(**defaults)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return value.envelope if isinstance(value, SealedSecret) else None


class EnvelopeKekId(models.Func):
    """The KEK id of a stored envelope, computed by the database: the second segment of
    `kv<N>.<kek id>.…` (docs/encryption.md), or "" for text without one.

    Written for a generated column (`ProviderKey.kek_id`): the database then derives the KEK id
    from whatever envelope a row holds, however it was written, so no writer can forget it.
    Both spellings are deterministic functions of the text alone, as a stored generated column
    requires, and agree on every input (the SQLite one is `split_part` spelled out).
    """

    arity = 1
    output_field = models.CharField(max_length=64)
    # A constant of the format, written into the column's definition as a literal.
    _separator = "'" + SEPARATOR.replace("'", "''") + "'"

    def as_postgresql(self, compiler, connection, **extra_context):
        envelope, params = compiler.compile(self.source_expressions[0])
        return f"split_part({envelope}, {self._separator}, 2)", params

    def as_sqlite(self, compiler, connection, **extra_context):
        envelope, params = compiler.compile(self.source_expressions[0])
        # With a separator appended, the text after the first one always ends in one: the
        # KEK id is what comes before it ("" when the envelope has no second segment).
        # No ", " in the SQL: Django's SQLite introspection splits a table's definition into
        # columns there, and would fail on this table.
        padded = f"({envelope}||{self._separator})"
        rest = f"substr({padded},instr({padded},{self._separator})+1)"
        sql = f"substr({rest},1,instr({rest},{self._separator})-1)"
        return sql, params * 4

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(
            f"EnvelopeKekId has no SQL for {connection.vendor}: only PostgreSQL and SQLite."
        )
