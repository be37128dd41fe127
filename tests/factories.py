import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory

from keyvault import services
from keyvault.models import ProviderKey, ProxyToken
from organizations import invitations, roles
from organizations.access import Access
from organizations.models import Invitation, Membership, Organization

# Every factory-made user's password, for the tests that sign in with it.
PASSWORD = "correct horse battery staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.LazyAttribute(lambda user: user.email)
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def verified(user, create, extracted, **kwargs):
        """The address is confirmed unless `verified=False` (as every account made before
        confirmation existed counts as confirmed)."""
        if not create:
            return
        from allauth.account.models import EmailAddress

        EmailAddress.objects.update_or_create(
            user=user,
            email=user.email.lower(),
            defaults={"primary": True, "verified": extracted is not False},
        )


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = roles.MEMBER.id


class ProviderKeyFactory(factory.Factory):
    """Creates keys through the service, as every surface does, so rows are always realistic."""

    class Meta:
        model = ProviderKey

    organization = factory.SubFactory(OrganizationFactory)
    provider = "openai"
    name = factory.Sequence(lambda n: f"Key {n}")
    secret = factory.Sequence(lambda n: f"sk-proj-test{n:06d}abcdefghijklmnopqrstuvwxyz")
    config = factory.LazyFunction(dict)
    is_default = False
    enabled = True
    created_by = None

    @classmethod
    def _create(cls, model_class, *, created_by=None, **kwargs):
        actor = Access.for_user(created_by) if created_by is not None else Access.operator("tests")
        return services.provider_key_create(actor=actor, **kwargs)


class ProxyTokenFactory(factory.Factory):
    """Creates tokens through the service; the token itself is on the row as `.raw` (tests only:
    it is never stored)."""

    class Meta:
        model = ProxyToken

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"token-{n}")
    scopes = factory.LazyFunction(lambda: ["keys:read", "keys:secret", "keys:write"])
    expires_in_days = None

    @classmethod
    def _create(cls, model_class, **kwargs):
        token, raw = services.proxy_token_create(actor=Access.operator("tests"), **kwargs)
        token.raw = raw
        return token


class InvitationFactory(factory.Factory):
    """Creates invitations through the service, by the operator or by `invited_by`; the link's
    token is on the row as `.raw` (tests only: it is never stored)."""

    class Meta:
        model = Invitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = roles.MEMBER.id
    invited_by = None

    @classmethod
    def _create(cls, model_class, *, invited_by=None, **kwargs):
        actor = Access.for_user(invited_by) if invited_by is not None else Access.operator("tests")
        invitation, raw = invitations.invitation_create(actor=actor, **kwargs)
        invitation.raw = raw
        return invitation
