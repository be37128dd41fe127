"""Throttles on every door that checks a password or sends a reset mail (accounts/throttle.py).

Counted before checking: parallel guesses each get their own number from the cache's atomic
increment, so no more than the limit are ever checked, in the local-memory cache and in Redis.
The parallel tests run real threads, each with its own client and database connection.
"""

import os
import threading
from unittest import mock

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts import throttle
from accounts.backends import EmailBackend
from tests.factories import PASSWORD, UserFactory

SIGN_IN = reverse("accounts:sign_in")
CHANGE = reverse("accounts:password_change")
RESET = reverse("accounts:password_reset")
NEW_PASSWORD = "another long passphrase 77"
# Redis for the shared-cache runs: its own database number, never the development one.
REDIS_URL = os.environ.get("KEYVAULT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["locmem", "redis"])
def shared_cache(request, settings):
    """The throttle's cache: local memory (one process) or Redis (every instance)."""
    if request.param == "redis":
        if not _redis_reachable():
            if os.environ.get("CI"):
                pytest.fail(f"Redis is not reachable at {REDIS_URL}")
            pytest.skip("Redis is not reachable")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
            }
        }
    from django.core.cache import cache

    cache.clear()
    yield request.param
    cache.clear()


def sign_in(client, email, password=PASSWORD, address="192.0.2.10"):
    return client.post(SIGN_IN, {"login": email, "password": password}, REMOTE_ADDR=address)


def in_parallel(count, work):
    """Run `work(i)` on `count` threads started together; their results, in order."""
    from django.db import connection

    barrier = threading.Barrier(count)
    results = [None] * count
    errors = []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.fixture
def password_checks():
    """How many times a password was actually checked (the backend was asked)."""
    checked = []
    real = EmailBackend.authenticate

    def counting(self, request, *args, **kwargs):
        checked.append(1)
        return real(self, request, *args, **kwargs)

    with mock.patch.object(EmailBackend, "authenticate", counting):
        yield checked


# --- Parallel guesses ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_forty_parallel_wrong_passwords_get_no_more_checks_than_the_limit(
    postgresql_only, shared_cache, settings, password_checks
):
    victim = UserFactory(email="victim@example.com")
    limit = settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT

    statuses = in_parallel(40, lambda i: sign_in(Client(), victim.email, f"guess {i}").status_code)

    assert len(password_checks) == limit
    assert sorted(statuses) == [200] * limit + [429] * (40 - limit)
    # The right password is refused now too, from that address.
    assert sign_in(Client(), victim.email).status_code == 429
    assert len(password_checks) == limit


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_current_passwords_get_no_more_checks_than_the_limit(
    postgresql_only, shared_cache, settings
):
    user = UserFactory(email="stolen-session@example.com")
    limit = settings.KEYVAULT_PASSWORD_CHANGE_FAILURES
    checks = []
    real = type(user).check_password

    def counting(self, raw):
        checks.append(1)
        return real(self, raw)

    def guess(i):
        client = Client()
        client.force_login(user)
        return client.post(
            CHANGE,
            {"oldpassword": f"guess {i}", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        ).status_code

    with mock.patch.object(type(user), "check_password", counting):
        statuses = in_parallel(20, guess)

    assert len(checks) == limit
    assert sorted(statuses) == [200] * limit + [429] * (20 - limit)


@pytest.mark.django_db(transaction=True)
def test_parallel_reset_requests_send_no_more_mails_than_the_limit(
    postgresql_only, shared_cache, settings
):
    UserFactory(email="inbox@example.com")
    limit = settings.KEYVAULT_PASSWORD_RESETS_PER_ADDRESS

    statuses = in_parallel(
        25,
        lambda i: (
            Client()
            .post(RESET, {"email": "inbox@example.com"}, REMOTE_ADDR=f"198.51.100.{i + 1}")
            .status_code
        ),
    )

    assert len(mail.outbox) == limit
    assert sorted(statuses) == [302] * limit + [429] * (25 - limit)


# --- One at a time --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_wrong_current_password_is_throttled_and_the_right_one_then_refused(client, settings):
    settings.KEYVAULT_PASSWORD_CHANGE_FAILURES = 2
    user = UserFactory()
    client.force_login(user)
    for _ in range(2):
        wrong = client.post(
            CHANGE, {"oldpassword": "wrong", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        )
        assert wrong.status_code == 200

    refused = client.post(
        CHANGE, {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_reset_mails_are_limited_per_address_and_an_unknown_one_looks_the_same(
    client, settings, mailoutbox
):
    settings.KEYVAULT_PASSWORD_RESETS_PER_ADDRESS = 2
    UserFactory(email="known@example.com")

    def ask(email, address="192.0.2.10"):
        return client.post(RESET, {"email": email}, REMOTE_ADDR=address)

    known = [ask("known@example.com").status_code for _ in range(3)]
    unknown = [ask("nobody@example.com").status_code for _ in range(3)]

    assert known == unknown == [302, 302, 429]
    assert len(mailoutbox) == 2
    assert [m.to for m in mailoutbox] == [["known@example.com"]] * 2
    refused = ask("KNOWN@example.com", address="192.0.2.99")
    assert refused.status_code == 429  # per address asked for, wherever from
    assert "Too many password reset mails" in refused.content.decode()


@pytest.mark.django_db
def test_reset_mails_are_limited_per_client_address(client, settings, mailoutbox):
    settings.KEYVAULT_PASSWORD_RESETS_PER_CLIENT = 3
    for n in range(3):
        UserFactory(email=f"person{n}@example.com")
        assert client.post(RESET, {"email": f"person{n}@example.com"}).status_code == 302
    UserFactory(email="person3@example.com")

    assert client.post(RESET, {"email": "person3@example.com"}).status_code == 429
    assert len(mailoutbox) == 3


# --- A shared egress address over its limit -----------------------------------------------------


@pytest.fixture
def crowded(settings, db):
    """An office address over its limit (someone behind it guessed across accounts)."""
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ADDRESS = 3
    user = UserFactory(email="colleague@example.com")
    return user


def _fill_the_address():
    for n in range(3):
        sign_in(Client(), f"sprayed{n}@example.com", "guess")


@pytest.mark.django_db
def test_over_its_limit_the_address_refuses_a_right_password_from_a_new_browser(crowded):
    _fill_the_address()

    response = sign_in(Client(), crowded.email)

    assert response.status_code == 429
    assert "_auth_user_id" not in response.client.session


@pytest.mark.django_db
def test_a_browser_that_signed_in_to_the_account_before_still_gets_in(crowded):
    browser = Client()
    assert sign_in(browser, crowded.email).status_code == 302
    assert browser.cookies[throttle.DEVICE_COOKIE]["httponly"]
    browser.post(reverse("accounts:sign_out"))
    _fill_the_address()

    assert sign_in(browser, crowded.email).status_code == 302
    # The cookie vouches for its own account only.
    UserFactory(email="other@example.com")
    browser.post(reverse("accounts:sign_out"))
    assert sign_in(browser, "other@example.com").status_code == 429


@pytest.mark.django_db
def test_a_device_cookie_still_counts_wrong_passwords_for_its_account(crowded, settings):
    settings.KEYVAULT_SIGNIN_FAILURES_PER_ACCOUNT = 2
    browser = Client()
    sign_in(browser, crowded.email)
    browser.post(reverse("accounts:sign_out"))
    _fill_the_address()
    for _ in range(2):
        assert sign_in(browser, crowded.email, "wrong").status_code == 200

    assert sign_in(browser, crowded.email).status_code == 429


@pytest.mark.django_db
def test_a_forged_or_copied_device_cookie_is_worth_nothing(crowded):
    _fill_the_address()
    forged = Client()
    forged.cookies[throttle.DEVICE_COOKIE] = throttle.account_digest(crowded.email)

    assert sign_in(forged, crowded.email).status_code == 429


@pytest.mark.django_db
def test_a_cache_outage_fails_open_but_still_checks_the_password(client):
    user = UserFactory()
    with mock.patch("core.counters.increment", side_effect=ConnectionError("down")):
        assert sign_in(client, user.email, "wrong").status_code == 200
        assert sign_in(client, user.email).status_code == 302
