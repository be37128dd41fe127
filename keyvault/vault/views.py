"""The Vault KV v2 read surface: thin views over the REST API's authentication, scopes,
throttling and accounting, the selectors and `keyvault.retrieval` (docs/vault.md).

Each view declares the actions of docs/permissions.md its methods take, as the REST API's do,
and the same permission class asks the access layer. Methods a view does not serve (every
write) answer 405 once the token is known to be valid; a request without a valid token answers
403 whatever it asks, as Vault does.
"""

from django.views.decorators.debug import sensitive_variables
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.counters import client_address
from core.errors import NotFoundError
from keyvault import selectors, services
from keyvault.api.authentication import ProxyTokenAuthentication, authentication_failed
from keyvault.api.permissions import TokenMayTakeActions
from keyvault.api.throttling import TokenRateThrottle
from keyvault.models import ProviderKey
from keyvault.retrieval import retrieve_secret
from keyvault.services.secret_versions import versions_kept
from keyvault.token_auth import TokenRefused, proxy_token_authenticate
from keyvault.usage import recorder
from keyvault.vault import responses
from keyvault.vault.errors import BadRequest, not_found, vault_exception_handler
from organizations.access import Access
from organizations.permissions import Action

READ = (Action.KEY_LIST,)
SECRET = (Action.KEY_REVEAL,)
ANY_VALID_TOKEN = ()
_MAX_DIGITS = 18


class VaultTokenAuthentication(ProxyTokenAuthentication):
    """`X-Vault-Token: kvp_…`, as Vault clients send it, or `Authorization: Bearer kvp_…`; one
    decision for both (`proxy_token_authenticate`), failures counted per address alike."""

    @sensitive_variables()
    def authenticate(self, request):
        raw = request.META.get("HTTP_X_VAULT_TOKEN")
        if raw is None:
            return super().authenticate(request)
        try:
            token = proxy_token_authenticate(raw)
        except TokenRefused as refused:
            raise authentication_failed(request, str(refused)) from None
        return token, token


class VaultView(APIView):
    authentication_classes = [VaultTokenAuthentication]
    permission_classes = [TokenMayTakeActions]
    throttle_classes = [TokenRateThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = []  # no body is ever read
    # LIST is Vault's own verb for listings; the writes are named so that they answer 405.
    http_method_names = ["get", "head", "list", "post", "put", "patch", "delete"]
    required_actions: dict = {}
    # Not in the REST API's OpenAPI schema: these are Vault's paths, described by Vault's docs
    # and docs/vault.md.
    schema = None

    def get_exception_handler(self):
        return vault_exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        recorder.record_token_use(request.auth.pk)

    def access(self, request) -> Access:
        access = getattr(request, "access", None)
        if access is None:
            access = request.access = Access.for_token(request.auth, ip=client_address(request))
        return access

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        # Secrets, and what says which secrets exist: never kept by a cache.
        response["Cache-Control"] = "no-store"
        return response


def _version_param(request) -> int | None:
    """`?version=N`: a whole number; 0 (or none) is the current version, as in Vault."""
    value = request.query_params.get("version")
    if value in (None, ""):
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
        raise BadRequest("version must be a whole number")
    return int(value) or None


def _enabled_key(request, provider: str, name: str | None) -> ProviderKey:
    """The organization's key (its default for `provider` without a name); disabled keys are
    not served here at all, so they answer as missing."""
    key = selectors.provider_key_resolve(
        organization_id=request.auth.organization_id, provider=provider, name=name
    )
    if not key.enabled:
        raise NotFoundError("No such key.")
    return key


class SecretDataView(VaultView):
    """GET `keyvault/data/{provider}[/{name}]`: the secret, `?version=N` an older one."""

    required_actions = {"GET": SECRET}

    @sensitive_variables()
    def get(self, request, provider, name=None):
        key = _enabled_key(request, provider, name)
        number = _version_param(request)
        version = None
        if number is not None and number != key.version:
            version = services.provider_key_version_get(key=key, number=number)
        retrieval = retrieve_secret(actor=self.access(request), key=key, version=version)
        config = selectors.version_served_config(key, version)
        return Response(responses.secret_read(key, retrieval.secret, config, version))


class SecretMetadataView(VaultView):
    """GET `keyvault/metadata/{provider}/{name}`: the key's versions; LIST (or GET with
    `?list=true`) `keyvault/metadata/` the providers, `keyvault/metadata/{provider}/` the
    names of their enabled keys."""

    required_actions = {"GET": READ, "LIST": READ}

    def get(self, request, provider=None, name=None):
        if request.query_params.get("list", "").lower() in ("true", "1"):
            return self.list(request, provider, name)
        if provider is None or not name:
            raise NotFoundError("Nothing here.")
        key = _enabled_key(request, provider, name)
        return Response(
            responses.secret_metadata(key, selectors.secret_versions_of(key), versions_kept())
        )

    def list(self, request, provider=None, name=None):
        if name:
            raise NotFoundError("A key is not a folder.")
        keys = selectors.provider_keys_for_org(
            organization_id=request.auth.organization_id, provider=provider
        ).filter(enabled=True)
        if provider is None:
            names = sorted({f"{p}/" for p in keys.values_list("provider", flat=True)})
        else:
            names = list(keys.values_list("name", flat=True))
        if not names:
            # Vault answers an empty listing as nothing there.
            raise NotFoundError("Nothing here.")
        return Response(responses.listing(names))


class LookupSelfView(VaultView):
    """`auth/token/lookup-self`: what a client checks a token with (`is_authenticated()`)."""

    required_actions = {"GET": ANY_VALID_TOKEN, "POST": ANY_VALID_TOKEN}

    def get(self, request):
        return Response(responses.token_lookup(request.auth))

    post = get


class MountView(VaultView):
    """`sys/internal/ui/mounts/keyvault[/…]`: the mount is KV version 2 (what Vault Agent and
    the CLI ask before reading, to choose between `data/` paths and plain ones)."""

    required_actions = {"GET": ANY_VALID_TOKEN}

    def get(self, request, rest=None):
        return Response(responses.mount_description())


class NothingHereView(VaultView):
    """Every other path: a read answers 404 for a valid token, a write 405 (nothing here is
    writable: `destroy/`, `delete/`, `undelete/`…), and both 403 without one."""

    required_actions = {"GET": ANY_VALID_TOKEN, "LIST": ANY_VALID_TOKEN}

    def get(self, request, *args, **kwargs):
        return not_found()

    list = get
