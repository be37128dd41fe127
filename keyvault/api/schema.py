"""Describes the bearer-token authentication in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ProxyTokenScheme(OpenApiAuthenticationExtension):
    target_class = "keyvault.api.authentication.ProxyTokenAuthentication"
    name = "proxyToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A proxy token: `kvp_` followed by 43 characters.",
        }


def leave_out_alternate_spellings(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: `keys/` answers as `keys` does, for people who type
    the slash; the schema names each operation once, at its canonical path."""
    return [endpoint for endpoint in endpoints if not endpoint[0].endswith("/")]
