from django.apps import AppConfig


class KeyvaultConfig(AppConfig):
    name = "keyvault"
    verbose_name = "Keyvault"

    def ready(self):
        from keyvault import checks  # noqa: F401  (registers the system checks)
        from keyvault.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from keyvault.locking import lock_organization_contents
        from organizations.contents import register_contents_lock

        # An organization's deletion deletes its keys and tokens: they are locked first, in
        # the order every writer keeps, or it could deadlock with a usage flush.
        register_contents_lock(lock_organization_contents)
