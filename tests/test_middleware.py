"""config/middleware.py: the pages' sessions, user and messages are skipped for the API, whose
answers keep every security header."""

import pytest
from django.http import HttpResponse
from django.test import Client

from config.middleware import (
    API_PREFIX,
    PagesAuthenticationMiddleware,
    PagesMessageMiddleware,
    PagesSessionMiddleware,
)
from tests.helpers import bearer

SESSION = {"HTTP_COOKIE": "sessionid=not-a-session"}


def test_an_api_request_loads_no_session_user_or_messages(rf, db):
    seen = {}

    def view(request):
        seen.update(
            session=hasattr(request, "session"),
            user=hasattr(request, "user"),
            messages=hasattr(request, "_messages"),
        )
        return HttpResponse()

    chain = PagesSessionMiddleware(PagesAuthenticationMiddleware(PagesMessageMiddleware(view)))
    chain(rf.get(f"{API_PREFIX}v1/ping", **SESSION))
    assert seen == {"session": False, "user": False, "messages": False}
    chain(rf.get("/accounts/sign-in/", **SESSION))
    assert seen == {"session": True, "user": True, "messages": True}


@pytest.mark.parametrize(
    "path",
    ["/api/v1/ping", "/api/v1/resolve?provider=openai", "/vault/v1/auth/token/lookup-self"],
)
def test_api_answers_never_touch_the_session_cookie_and_keep_the_security_headers(path, make_token):
    client = Client()
    response = client.get(path, **bearer(make_token("keys:secret")), **SESSION)
    assert "sessionid" not in response.cookies
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response
    assert "Permissions-Policy" in response


def test_pages_still_clear_an_unknown_session(db):
    client = Client()
    client.cookies["sessionid"] = "not-a-session"
    response = client.get("/accounts/sign-in/")
    assert response.status_code == 200
    assert response.cookies["sessionid"].value == ""
