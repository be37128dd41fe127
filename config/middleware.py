"""Security headers Django's own middleware does not send.

`SecurityMiddleware` covers content-type sniffing, the referrer policy and the opener policy,
and `XFrameOptionsMiddleware` clickjacking; this adds a Content-Security-Policy (only the app's
own static files may run or style a page, so injected markup stays inert) and a
Permissions-Policy. A view that sets its own header keeps it.
"""

from django.conf import settings


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
