"""Sign-in throttling (django-axes, accounts/signin.py) on the admin login and the push API alike.

An attacker guessing one account's password from one address is paused after AXES_FAILURE_LIMIT
failures; the real owner of the account at another address — or the platforms' service account
reaching the site through the same reverse proxy with another client address — still signs in.
The counters live in the database, or in Redis when REDIS_URL is set (both are exercised by the
suite's two runs).
"""

import base64
from datetime import timedelta
import json
import time

from django.conf import settings
from django.test import RequestFactory
from django.urls import reverse
import pytest

from accounts import roles
from accounts.signin import client_ip
from casework.models import Case
from tests.factories import make_user

LOGIN = "/admin/login/?next=/admin/"
ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
PROXY = "10.0.0.5"

MESSAGE = {"message_id": "T-001", "subject": "路灯坏了", "body": "小区门口路灯坏了三天。",
           "submitted_at": "2026-03-02T09:00:00+08:00"}


def admin_login(client, username, password, address, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def push(client, username, password, **meta):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return client.post(reverse("api_messages_push") + "?platform=wzxd", data=json.dumps(MESSAGE),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Basic {token}", **meta)


def signed_in(response) -> bool:
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


def test_admin_login_pauses_the_attacker_after_the_limit_and_not_the_owner_elsewhere(client, bureau):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = admin_login(client, "dispatcher", "guess", ATTACKER)
        assert response.status_code == 200  # the ordinary "wrong password" form
    locked = admin_login(client, "dispatcher", "guess", ATTACKER)
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "登录失败次数过多" in text and 'id="cw-login-locked"' in text
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    # The right password from the attacker's address is refused while the pause lasts …
    refused = admin_login(client, "dispatcher", "pw", ATTACKER)
    assert refused.status_code == 429
    assert not refused.wsgi_request.user.is_authenticated
    # … while the owner at another address signs in, and so does another account at the attacker's.
    assert signed_in(admin_login(client, "dispatcher", "pw", OWNER))
    client.logout()
    assert signed_in(admin_login(client, "handler_a", "pw", ATTACKER))


def test_api_behind_the_proxy_pauses_the_attacker_not_the_service_account(client, bureau, settings):
    settings.CASEWORK_TRUSTED_PROXIES = [PROXY]
    make_user("platform_push", role=roles.DISPATCHER, city_wide=bureau.city)

    def via_proxy(client_address):
        return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": client_address}

    answers = [push(client, "platform_push", "guess", **via_proxy(ATTACKER)).status_code
               for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert answers == [401] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    refused = push(client, "platform_push", "pw", **via_proxy(ATTACKER))
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert "登录失败次数过多" in refused.json()["error"]
    assert not Case.objects.exists()

    # The platform's own server pushes through the same proxy from its own address: not locked out.
    accepted = push(client, "platform_push", "pw", **via_proxy(f"{OWNER}, {PROXY}"))
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["created"] == 1


def test_forwarded_header_from_an_untrusted_peer_is_ignored(client, bureau):
    # No proxy configured: rotating X-Forwarded-For does not give a guesser fresh addresses.
    statuses = [push(client, "dispatcher", "guess", REMOTE_ADDR=ATTACKER,
                     HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
                for i in range(settings.AXES_FAILURE_LIMIT + 1)]
    assert statuses[-2:] == [429, 429]
    assert push(client, "dispatcher", "pw", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=OWNER).status_code == 429


def test_admin_and_api_share_one_count(client, bureau):
    half = settings.AXES_FAILURE_LIMIT // 2
    for _ in range(half):
        assert push(client, "dispatcher", "guess", REMOTE_ADDR=ATTACKER).status_code == 401
    for _ in range(settings.AXES_FAILURE_LIMIT - half):
        response = admin_login(client, "dispatcher", "guess", ATTACKER)
    assert response.status_code == 429
    assert push(client, "dispatcher", "pw", REMOTE_ADDR=ATTACKER).status_code == 429


def test_the_pause_ends_after_the_cool_off(client, bureau, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "dispatcher", "guess", ATTACKER)
    assert admin_login(client, "dispatcher", "pw", ATTACKER).status_code == 429
    time.sleep(2.5)
    assert signed_in(admin_login(client, "dispatcher", "pw", ATTACKER))


def test_a_success_before_the_limit_starts_the_count_again(client, bureau):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login(client, "dispatcher", "typo", OWNER)
    assert signed_in(admin_login(client, "dispatcher", "pw", OWNER))
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert admin_login(client, "dispatcher", "typo", OWNER).status_code == 200


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ([], "203.0.113.1", "", "203.0.113.1"),
        ([], "203.0.113.1", "198.51.100.2", "203.0.113.1"),  # not trusted: header ignored
        (["10.0.0.0/8"], "10.1.2.3", "198.51.100.2", "198.51.100.2"),
        (["10.0.0.0/8"], "10.1.2.3", "6.6.6.6, 198.51.100.2, 10.9.9.9", "198.51.100.2"),  # forged left part
        (["10.0.0.0/8"], "10.1.2.3", "", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", "not-an-ip", "10.1.2.3"),
        (["10.0.0.0/8"], "203.0.113.1", "198.51.100.2", "203.0.113.1"),  # peer is no proxy of ours
        (["::1"], "::ffff:10.0.0.1", "198.51.100.2", "10.0.0.1"),
        (["::1"], "::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_client_address_behind_a_trusted_proxy(settings, trusted, remote, forwarded, expected):
    settings.CASEWORK_TRUSTED_PROXIES = trusted
    meta = {"REMOTE_ADDR": remote}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_ip(RequestFactory().get("/", **meta)) == expected
