"""Sealing, opening and re-wrapping the secret of a row: the one place where a model instance
meets `keyvault.crypto`.

`SecretField` (keyvault/fields.py) only stores and loads envelopes, as Django's field protocol
asks; it calls `seal_secret` at save for a value assigned as text. Everything else that needs a
key comes here: `services.provider_key_reveal` (the only decrypting code path), rekeying, KEK
rotation and the envelope upgrade.

A row's secret is bound to its context (`secret_context`): the model that declares the field,
the field, the organization, the row's primary key, and the binding the field's model names
(the settings that decide where the secret is sent). A ciphertext moved anywhere else, or left
behind when those settings change, fails to open.
"""

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from keyvault import crypto
from keyvault.crypto import EncryptionContext, Keyring


class SealedSecret:
    """A stored secret, still encrypted. Holds the envelope text, never the plaintext."""

    __slots__ = ("envelope",)

    def __init__(self, envelope: str):
        self.envelope = envelope

    @property
    def kek_id(self) -> str | None:
        """The id of the KEK its data key is wrapped under, read from the envelope header."""
        parts = self.envelope.split(crypto.envelope.SEPARATOR, 2)
        return parts[1] if len(parts) == 3 else None

    def __eq__(self, other):
        return isinstance(other, SealedSecret) and other.envelope == self.envelope

    def __hash__(self):
        return hash(self.envelope)

    def __repr__(self):
        return f"<SealedSecret kek={self.kek_id!r}>"

    __str__ = __repr__


class PendingSecret:
    """A plaintext assigned to a `SecretField` and not yet saved; the field seals it at save."""

    __slots__ = ("_plaintext",)

    def __init__(self, plaintext: str):
        self._plaintext = plaintext

    @property
    def plaintext(self) -> str:
        return self._plaintext

    def __repr__(self):
        return "<PendingSecret (hidden)>"

    __str__ = __repr__

    def __reduce__(self):
        # Pickling would copy the plaintext into caches, sessions or task queues.
        raise TypeError("An unsaved secret cannot be pickled.")


def legacy_envelopes_open() -> bool:
    """Whether this process opens envelopes in a legacy format (docs/operations.md): on only
    while they are being upgraded."""
    return bool(getattr(settings, "KEYVAULT_OPEN_LEGACY_ENVELOPES", False))


def secret_context(instance, *, field: str = "secret") -> EncryptionContext:
    """The associated data the secret in `instance`'s `field` is sealed to and opened with."""
    secret_field = instance._meta.get_field(field)
    # The model that declares the field, not the instance's class: a proxy model (or a
    # subclass) of the same table must seal and open with the same associated data.
    model = secret_field.model
    organization_field = model._meta.get_field(secret_field.organization_field)
    organization_id = getattr(instance, organization_field.attname, None)
    if organization_id is None or instance.pk is None:
        raise ValueError(
            "A secret can be sealed or opened only on a row with an organization and a primary key."
        )
    binding_method = secret_field.binding_method
    return context_for(
        model,
        field=secret_field.name,
        # Canonical text of each id, whatever form it was assigned in ("ABC…" or hex without
        # hyphens for a UUID): the same row must always give the same context.
        organization_id=organization_field.target_field.to_python(organization_id),
        row_id=model._meta.pk.to_python(instance.pk),
        binding=getattr(instance, binding_method)() if binding_method else "",
    )


def context_for(model, *, field: str = "secret", organization_id, row_id, binding: str):
    """The context of a secret of `model` from values read without an instance (a re-wrap job
    reads millions of rows as tuples): the ids as the database returns them (a `UUID`), the
    binding as the model's binding method would compute it. `secret_context` is this too."""
    return EncryptionContext(
        model=model._meta.label_lower,
        field=field,
        organization_id=str(organization_id),
        row_id=str(row_id),
        binding=binding,
    )


@sensitive_variables()
def seal_secret(
    instance, plaintext: str, keyring: Keyring | None = None, *, field: str = "secret"
) -> SealedSecret:
    """`plaintext` sealed to `instance`'s context under the primary KEK (not saved)."""
    envelope = crypto.seal(
        plaintext.encode("utf-8"),
        secret_context(instance, field=field),
        keyring or crypto.get_keyring(),
    )
    return SealedSecret(envelope)


def _stored(instance, field: str, doing: str) -> SealedSecret:
    value = getattr(instance, instance._meta.get_field(field).attname)
    if not isinstance(value, SealedSecret):
        raise TypeError(f"Only a saved secret can be {doing}.")
    return value


@sensitive_variables()
def open_secret(instance, keyring: Keyring | None = None, *, field: str = "secret") -> str:
    """The plaintext of the instance's stored secret. Raises a `CryptoError` on failure."""
    plaintext = crypto.open_sealed(
        _stored(instance, field, "opened").envelope,
        secret_context(instance, field=field),
        keyring or crypto.get_keyring(),
        legacy=legacy_envelopes_open(),
    )
    return plaintext.decode("utf-8")


def rewrap_secret(
    instance, keyring: Keyring | None = None, *, field: str = "secret"
) -> SealedSecret:
    """The stored secret with its data key re-wrapped under the primary KEK (not saved)."""
    return SealedSecret(
        crypto.rewrap(
            _stored(instance, field, "re-wrapped").envelope,
            secret_context(instance, field=field),
            keyring or crypto.get_keyring(),
            legacy=legacy_envelopes_open(),
        )
    )
