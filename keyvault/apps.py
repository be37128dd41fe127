from django.apps import AppConfig


class KeyvaultConfig(AppConfig):
    name = "keyvault"
    verbose_name = "Keyvault"

    def ready(self):
        from keyvault import checks  # noqa: F401  (registers the system checks)
        from keyvault.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
