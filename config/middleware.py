"""Headers Django's own middleware does not send: security headers and private caching.

`SecurityMiddleware` covers content-type sniffing, the referrer policy and the opener policy,
and `XFrameOptionsMiddleware` clickjacking; this adds a Content-Security-Policy (only the app's
own static files may run or style a page, so injected markup stays inert) and a
Permissions-Policy. A view that sets its own header keeps it.
"""

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.utils.cache import add_never_cache_headers, patch_cache_control

# The proxy API's paths: token-authenticated JSON that uses no session, signed-in user or
# flash message.
API_PREFIX = "/api/"
# Every token-authenticated surface: the REST API and the Vault-compatible one (docs/vault.md).
MACHINE_PREFIXES = (API_PREFIX, "/vault/")


class _PagesOnly:
    """A middleware of the pages (sessions, the signed-in user, messages) that requests to the
    API go straight past. The API authenticates with a bearer token and never reads a session,
    a user or a message, yet every proxy request paid for loading the session store, a lazy
    user and the message storage with its cookie signer, and could be answered with session
    cookies it never asked for. Subclasses of Django's own classes, so the admin's checks
    (which look for them) still find them; the security headers keep applying to every path."""

    def __call__(self, request):
        if request.path_info.startswith(MACHINE_PREFIXES):
            return self.get_response(request)
        return super().__call__(request)


class PagesSessionMiddleware(_PagesOnly, SessionMiddleware):
    pass


class PagesAuthenticationMiddleware(_PagesOnly, AuthenticationMiddleware):
    pass


class PagesMessageMiddleware(_PagesOnly, MessageMiddleware):
    pass


class PrivatePagesMiddleware:
    """Pages answered to a browser holding a session show an organization's data: they are
    marked `private, no-store` so no shared or back-button cache keeps them. Requests without
    a session cookie (the proxy API) are left as they are, without touching the session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES and "Cache-Control" not in response:
            add_never_cache_headers(response)
            patch_cache_control(response, private=True)
        return response


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.headers = {
            "Content-Security-Policy": settings.CONTENT_SECURITY_POLICY,
            "Permissions-Policy": settings.PERMISSIONS_POLICY,
        }

    def __call__(self, request):
        response = self.get_response(request)
        for name, value in self.headers.items():
            if value and name not in response:
                response[name] = value
        return response
