"""Drives Keyvault through nginx (run by .ci/deploy-check): HTTPS with the proxy's
certificate, from 127.0.0.2 so that the client's address differs from nginx's own. Exits
non-zero on any surprise; prints one line per thing proven."""

import http.client
import json
import os
import re
import socket
import ssl
import sys
from http.cookies import SimpleCookie

HOST = os.environ["HOST"]
HTTPS_PORT = int(os.environ["HTTPS_PORT"])
HTTP_PORT = int(os.environ["HTTP_PORT"])
CLIENT_ADDRESS = "127.0.0.2"
FORGED_ADDRESS = "203.0.113.99"
ORIGIN = f"https://{HOST}:{HTTPS_PORT}"
context = ssl.create_default_context(cafile=os.environ["CAFILE"])


class ProxyConnection(http.client.HTTPSConnection):
    """HTTPS to nginx on loopback, checked against the certificate's name, from CLIENT_ADDRESS."""

    def connect(self):
        sock = socket.create_connection(
            ("127.0.0.1", HTTPS_PORT), timeout=15, source_address=(CLIENT_ADDRESS, 0)
        )
        self.sock = context.wrap_socket(sock, server_hostname=HOST)


cookies: dict[str, str] = {}


def request(method, path, *, headers=None, body=None, plain_http=False):
    headers = dict(headers or {})
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if plain_http:
        connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=15)
        headers["Host"] = HOST
    else:
        connection = ProxyConnection(HOST, HTTPS_PORT)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read().decode()
    for header in response.headers.get_all("Set-Cookie") or []:
        for name, morsel in SimpleCookie(header).items():
            cookies[name] = morsel.value
    connection.close()
    return response, data


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"   {message}")


# --- HTTP only redirects ------------------------------------------------------------------------
response, _ = request("GET", "/accounts/sign-in/", plain_http=True)
check(
    response.status == 301 and response.headers["Location"].startswith(f"https://{HOST}"),
    "plain HTTP is redirected to HTTPS by nginx",
)

# --- Health, API ----------------------------------------------------------------------------------
response, body = request("GET", "/healthz")
check(response.status == 200 and json.loads(body)["status"] == "ok", "/healthz is ok through TLS")

auth = {"Authorization": f"Bearer {os.environ['KEYVAULT_TOKEN']}"}
response, body = request("GET", "/api/v1/ping", headers=auth)
check(response.status == 200 and json.loads(body)["organization"] == "deploy", "API ping")

secret = "sk-deploy-check-" + "y" * 28
response, body = request(
    "POST",
    "/api/v1/keys",
    headers={**auth, "Content-Type": "application/json", "X-Forwarded-For": FORGED_ADDRESS},
    body=json.dumps({"provider": "openai", "name": "edge", "secret": secret, "is_default": True}),
)
check(response.status == 201 and secret not in body, "a key stored through the API")

response, body = request("GET", "/api/v1/resolve?provider=openai", headers=auth)
check(response.status == 200 and json.loads(body)["secret"] == secret, "the key resolved")
etag = response.headers["ETag"]
response, _ = request(
    "GET", "/api/v1/resolve?provider=openai", headers={**auth, "If-None-Match": etag}
)
check(response.status == 304, "revalidation with If-None-Match answers 304 through nginx")

# --- A page over HTTPS: the forwarded protocol is honoured ----------------------------------------
# The admin's sign-in is the accounts' sign-in page (the admin's own redirects there).
response, _ = request("GET", "/admin/login/")
check(
    response.status == 302 and response.headers["Location"].startswith("/accounts/sign-in/"),
    "the admin sends its sign-in to the accounts' page",
)
response, page = request("GET", "/accounts/sign-in/?next=%2Fadmin%2F")
check(response.status == 200, "the sign-in page answers over HTTPS (no redirect loop)")
check("max-age=" in (response.headers["Strict-Transport-Security"] or ""), "HSTS is sent")
set_cookie = " ".join(response.headers.get_all("Set-Cookie") or [])
check("csrftoken=" in set_cookie and "Secure" in set_cookie, "the CSRF cookie is Secure")
csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

form = (
    f"csrfmiddlewaretoken={csrf}&login=admin%40deploy.test"
    f"&password={os.environ['PASSWORD']}&next=%2Fadmin%2F"
)
response, _ = request(
    "POST",
    "/accounts/sign-in/",
    headers={
        "Content-Type": "application/x-www-form-urlencoded",
        # Django compares the Origin with the request's own scheme and host: only a request it
        # knows to be HTTPS (X-Forwarded-Proto) passes.
        "Origin": ORIGIN,
        "Referer": f"{ORIGIN}/accounts/sign-in/",
        "X-Forwarded-For": FORGED_ADDRESS,
    },
    body=form,
)
check(response.status == 302 and "sessionid" in cookies, "signed in through HTTPS (CSRF origin)")

# --- The client's address, as nginx saw it, reaches the audit trail -------------------------------
response, page = request("GET", "/admin/audit/auditevent/?action=provider_key.created")
check(response.status == 200, "the audit trail page answers")
check(CLIENT_ADDRESS in page, f"the key's audit event records the client address {CLIENT_ADDRESS}")
check(FORGED_ADDRESS not in page, "a forged X-Forwarded-For is not believed")
