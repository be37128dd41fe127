"""`GET /api/v1/`: what the API offers and where its documentation is, for a person or a client
finding it. Public and static: it reads no token, no database and no secret."""

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # A JSON 405 for a POST, not the CSRF middleware's HTML 403.
def api_index(request):
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    url = request.build_absolute_uri
    return JsonResponse(
        {
            "name": "Keyvault proxy API",
            "version": "1",
            "authentication": "Authorization: Bearer kvp_… (a proxy token; its scopes decide "
            "what it may do)",
            "schema": url(reverse("api:schema")),
            "docs": url(reverse("api:docs")),
            "endpoints": {
                "ping": url(reverse("api:ping")),
                "keys": url(reverse("api:keys")),
                "key": url(reverse("api:keys")) + "/{id}",
                "key_secret": url(reverse("api:keys")) + "/{id}/secret",
                "resolve": url(reverse("api:resolve")) + "?provider={provider}[&name={name}]",
            },
        }
    )
