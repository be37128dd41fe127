"""Forms of the organization pages."""

from django import forms
from django.core.exceptions import ValidationError

from organizations import roles
from organizations.models import Organization
from organizations.permissions import grantable_roles
from organizations.services import EMAIL_MAX_LENGTH

NAME_MAX_LENGTH = Organization._meta.get_field("name").max_length
SLUG_MAX_LENGTH = Organization._meta.get_field("slug").max_length


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Name", max_length=NAME_MAX_LENGTH)


class OrganizationCreateForm(OrganizationForm):
    slug = forms.SlugField(
        label="URL name",
        max_length=SLUG_MAX_LENGTH,
        required=False,
        help_text="Used in addresses (/o/&lt;name&gt;/). Leave empty to derive it from the name.",
    )


class OrganizationDeleteForm(forms.Form):
    confirmation = forms.CharField(
        label="Type the organization's URL name to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_confirmation(self):
        value = self.cleaned_data["confirmation"].strip()
        if value != self.organization.slug:
            raise ValidationError(
                f"Type {self.organization.slug} exactly to delete this organization."
            )
        return value


def grantable_role_choices(access, organization) -> list[tuple[str, str]]:
    return [(role.id, role.name) for role in grantable_roles(access, organization)]


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=EMAIL_MAX_LENGTH)
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, access, organization, **kwargs):
        super().__init__(*args, **kwargs)
        choices = grantable_role_choices(access, organization)
        self.fields["role"].choices = choices
        self.fields["role"].initial = (
            roles.MEMBER.id if any(role_id == roles.MEMBER.id for role_id, _ in choices) else None
        )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, access, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = grantable_role_choices(access, organization)
