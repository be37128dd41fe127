from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    name = "organizations"
    verbose_name = "Organizations"

    def ready(self):
        # Confirming the address of a new account opens the organization asked for at sign-up.
        from organizations.web import sign_up  # noqa: F401
