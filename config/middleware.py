"""Headers Django's own middleware does not send: security headers and private caching.

`SecurityMiddleware` covers content-type sniffing, the referrer policy and the opener policy,
and `XFrameOptionsMiddleware` clickjacking; this adds a Content-Security-Policy (only the app's
own static files may run or style a page, so injected markup stays inert) and a
Permissions-Policy. A view that sets its own header keeps it.
"""

from django.conf import settings
from django.utils.cache import add_never_cache_headers, patch_cache_control


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
