"""Forms of the provider-key, proxy-token and audit pages.

Secrets are typed into password inputs that never render a value back and ask browsers not to
offer saved passwords; forms check shape only, and the services decide everything else.
"""

from django import forms
from django.utils.html import escape

from audit import AuditAction
from keyvault import providers
from keyvault.models import ProviderKey, ProxyToken
from keyvault.services import MAX_TOKEN_DAYS
from organizations.roles import TokenScope

CONFIG_PREFIX = "config_"


_SECRET_ATTRS = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}


class SecretTextarea(forms.Textarea):
    """A textarea for multi-line secrets (service-account JSON) that, like a password input,
    never renders the submitted value back into the page."""

    def format_value(self, value):
        return None


def secret_input(provider: providers.Provider) -> forms.Widget:
    if provider.secret_is_service_account_json:
        return SecretTextarea(attrs={**_SECRET_ATTRS, "rows": 6})
    return forms.PasswordInput(render_value=False, attrs=_SECRET_ATTRS)


class SecretNotKeptMixin:
    """A secret input never renders the submitted value back (it would sit in the page's HTML
    and the browser's cache), so a form answered with an error comes back with an empty secret
    box: `secret_not_kept` says so, for the page to ask for it again."""

    SECRET_NOT_KEPT = "For safety the secret you entered was not kept: paste it again."

    @property
    def secret_not_kept(self) -> bool:
        return bool(self.is_bound and self.errors and self.data.get(self.add_prefix("secret")))


class ProviderChoiceForm(forms.Form):
    provider = forms.ChoiceField(label="Provider", choices=providers.CHOICES)


class ProviderKeyForm(SecretNotKeptMixin, forms.Form):
    """A key's name, its provider's config settings (one input each) and its flags; with a
    secret field when the key is being added."""

    name = forms.CharField(
        label="Name",
        max_length=ProviderKey._meta.get_field("name").max_length,
        help_text="How your team tells this key apart, such as “production” or “batch jobs”.",
    )
    is_default = forms.BooleanField(
        label="Default key for this provider",
        required=False,
        help_text="Proxies asking for the provider without naming a key receive this one.",
    )
    enabled = forms.BooleanField(
        label="Enabled",
        required=False,
        initial=True,
        help_text="A disabled key is kept, but proxies no longer receive it.",
    )

    def __init__(self, *args, provider: providers.Provider, with_secret: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.provider = provider
        if with_secret:
            self.fields["secret"] = forms.CharField(
                label=provider.secret_label,
                strip=False,
                widget=secret_input(provider),
                help_text="Stored encrypted. After saving, Keyvault shows only a masked hint.",
            )
        elif any(spec.routes_secret for spec in provider.config_fields):
            # Editing where the secret is sent needs the secret itself (the service insists).
            self.fields["secret"] = forms.CharField(
                label=provider.secret_label,
                required=False,
                strip=False,
                widget=secret_input(provider),
                help_text="Needed only to change the endpoint or base URL: enter the key's "
                "secret again (a different one rotates the key).",
            )
        for spec in provider.config_fields:
            self.fields[CONFIG_PREFIX + spec.name] = forms.CharField(
                label=spec.label,
                required=spec.required,
                max_length=spec.max_length,
                # Django renders help text as HTML; the catalog's is plain text ("https://<resource>…").
                help_text=escape(
                    spec.help_text
                    or (f"Expected: {spec.pattern_hint}." if spec.pattern_hint else "")
                ),
                widget=forms.URLInput() if spec.kind == "url" else forms.TextInput(),
            )
        order = ["name", "secret", *(CONFIG_PREFIX + s.name for s in provider.config_fields)]
        self.order_fields(order)

    @property
    def config_fields(self):
        return [self[CONFIG_PREFIX + spec.name] for spec in self.provider.config_fields]

    @property
    def plain_fields(self):
        return [field for field in self if not field.name.startswith(CONFIG_PREFIX)]

    def clean(self):
        cleaned = super().clean()
        config = {
            spec.name: cleaned.get(CONFIG_PREFIX + spec.name) or ""
            for spec in self.provider.config_fields
            if CONFIG_PREFIX + spec.name not in self.errors
        }
        config, problems = providers.check_config(self.provider, config)
        for name, messages in problems.items():
            field = CONFIG_PREFIX + name if name else None
            if field and field in self.errors:
                continue
            self.add_error(field, messages)
        cleaned["config"] = config
        return cleaned

    @staticmethod
    def initial_for(key: ProviderKey) -> dict:
        initial = {"name": key.name, "is_default": key.is_default, "enabled": key.enabled}
        initial.update({CONFIG_PREFIX + name: value for name, value in key.config.items()})
        return initial


class RotateForm(SecretNotKeptMixin, forms.Form):
    def __init__(self, *args, provider: providers.Provider, **kwargs):
        super().__init__(*args, **kwargs)
        label = provider.secret_label
        if not label[:2].isupper():  # "API key" keeps its capitals; "Secret access key" not
            label = label[0].lower() + label[1:]
        self.fields["secret"] = forms.CharField(
            label=f"New {label}",
            strip=False,
            widget=secret_input(provider),
        )


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=ProxyToken._meta.get_field("name").max_length,
        help_text="Which proxy or service uses it, such as “gateway-prod”.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=[
            (TokenScope.KEYS_READ.value, "keys:read — list keys and their metadata"),
            (TokenScope.KEYS_SECRET.value, "keys:secret — receive decrypted secrets"),
            (
                TokenScope.KEYS_WRITE.value,
                "keys:write — add, change, rotate and delete keys (together with keys:read)",
            ),
        ],
        initial=[TokenScope.KEYS_READ.value, TokenScope.KEYS_SECRET.value],
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Pick at least one scope: a proxy that fetches keys needs keys:read "
            "and keys:secret; add keys:write only for a tool that manages keys."
        },
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        help_text="Leave empty for a token that lasts until it is revoked.",
    )


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label="Action", required=False)
    actor = forms.ChoiceField(label="Access", required=False)

    def __init__(self, *args, actors: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "Any action")] + [
            (action.value, action.label) for action in AuditAction
        ]
        self.fields["actor"].choices = [("", "Anyone")] + [(label, label) for label in actors]
