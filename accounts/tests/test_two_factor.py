"""Two-factor authentication: enrolment on /accounts/security/, the login page's code step,
the token endpoint's `otp`, recovery codes, and 2FA required by setting or by an operator."""

from __future__ import annotations

import time

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import Client, RequestFactory
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services
from accounts.access import AccessMiddleware, second_factor_verified
from accounts.models import BrokerAccount
from accounts.views import PENDING_LOGIN_KEY
from conftest import client_for, totp_code

from .conftest import wrong_code

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Passw0rd!"  # the make_user fixture's default
TOKEN_URL = "/api/v1/auth/token/"


def obtain(password: str = PASSWORD, **body):
    return APIClient().post(
        TOKEN_URL, {"username": "alice", "password": password, **body}, format="json"
    )


def password_step(browser: Client, next_url: str = ""):
    data = {"username": "alice", "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return browser.post("/accounts/login/", data)


# --- Enrolment --------------------------------------------------------------------------------
def test_enrolment_shows_a_qr_code_and_the_secret_then_a_code_turns_it_on(client, trader):
    client.force_login(trader)
    page = client.get("/accounts/security/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "<path" in html  # the QR code, inline: no image service
    device = TOTPDevice.objects.get(user=trader, confirmed=False)
    assert page.context["enrolment"].secret.replace(" ", "") in html.replace(" ", "")
    assert "otpauth" not in html  # the QR code carries the URL, the page doesn't

    wrong = client.post("/accounts/security/", {"action": "enrol", "otp": wrong_code(device)})
    assert wrong.status_code == 400
    assert not services.has_second_factor(trader)

    done = client.post("/accounts/security/", {"action": "enrol", "otp": totp_code(device)})
    assert done.status_code == 200
    codes = done.context["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(code in done.content.decode() for code in codes)
    assert services.has_second_factor(trader)
    # Shown once: the page never shows them again.
    again = client.get("/accounts/security/")
    assert again.context["recovery_codes"] == []
    assert codes[0] not in again.content.decode()
    assert "Turn off" in again.content.decode()


def test_turning_it_off_takes_a_code(client, trader, enrol, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's delay after a wrong code: its own test
    device, codes = enrol(trader)
    client.force_login(trader)
    refused = client.post("/accounts/security/", {"action": "disable", "otp": wrong_code(device)})
    assert refused.status_code == 400
    assert services.has_second_factor(trader)
    done = client.post("/accounts/security/", {"action": "disable", "otp": codes[0]})
    assert done.status_code == 302
    assert not services.has_second_factor(trader)
    assert not StaticToken.objects.filter(device__user=trader).exists()


def test_it_cannot_be_turned_off_where_it_is_required(trader, enrol, settings):
    device, _codes = enrol(trader)
    settings.TWO_FACTOR_REQUIRED = "all"
    with pytest.raises(services.LoginRefused) as refused:
        services.disable_second_factor(user=trader, otp=totp_code(device))
    assert refused.value.code == "otp_enrolment_required"
    assert services.has_second_factor(trader)


# --- The login page -------------------------------------------------------------------------
def test_a_user_without_2fa_logs_in_with_the_password_alone(trader):
    browser = Client()
    response = password_step(browser)
    assert response.status_code == 302 and response["Location"] == "/"
    assert browser.get("/").status_code == 200


def test_the_login_page_asks_for_the_code_and_logs_in_only_when_it_passes(trader, enrol, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's delay after a wrong code: its own test
    device, _codes = enrol(trader)
    browser = Client()
    response = password_step(browser, next_url="/orders/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/code/"
    # Not logged in between the two steps.
    assert browser.get("/")["Location"].startswith("/accounts/login/")
    assert browser.get("/accounts/login/code/").status_code == 200

    wrong = browser.post("/accounts/login/code/", {"otp": wrong_code(device)})
    assert wrong.status_code == 401
    assert "wrong or has expired" in wrong.context["form"].errors["otp"][0]
    assert browser.get("/")["Location"].startswith("/accounts/login/")

    right = browser.post("/accounts/login/code/", {"otp": totp_code(device)})
    assert right.status_code == 302 and right["Location"] == "/orders/"
    assert browser.get("/").status_code == 200
    assert browser.session[services.django_otp.DEVICE_ID_SESSION_KEY] == device.persistent_id


def test_after_a_wrong_code_the_device_makes_the_next_one_wait_and_says_so(trader, enrol):
    device, _codes = enrol(trader)
    assert obtain(otp=wrong_code(device)).json()["code"] == "otp_invalid"
    too_soon = obtain(otp=totp_code(device))
    assert too_soon.status_code == 401
    assert too_soon.json()["code"] == "otp_invalid"
    assert too_soon.json()["detail"].startswith("Too many wrong codes; try again in")


def test_the_code_step_without_a_password_step_sends_back_to_log_in(trader, enrol):
    enrol(trader)
    response = Client().post("/accounts/login/code/", {"otp": "123456"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


def test_a_code_step_left_too_long_must_start_over(trader, enrol):
    device, _codes = enrol(trader)
    browser = Client()
    password_step(browser)
    session = browser.session
    session[PENDING_LOGIN_KEY]["until"] = time.time() - 1
    session.save()
    response = browser.post("/accounts/login/code/", {"otp": totp_code(device)})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert browser.get("/")["Location"].startswith("/accounts/login/")


def test_a_recovery_code_logs_in_once(trader, enrol):
    _device, codes = enrol(trader)
    browser = Client()
    password_step(browser)
    assert browser.post("/accounts/login/code/", {"otp": codes[0].upper()}).status_code == 302
    again = Client()
    password_step(again)
    assert again.post("/accounts/login/code/", {"otp": codes[0]}).status_code == 401


def test_wrong_codes_count_against_the_login_limit(trader, enrol, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = "3/900s"
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's own per-device delay: out of the way
    device, _codes = enrol(trader)
    for _ in range(3):
        assert obtain(otp="000000").status_code == 401
    locked = obtain(otp=totp_code(device))
    assert locked.status_code == 429


# --- The token endpoint -----------------------------------------------------------------------
def test_the_token_endpoint_refuses_a_missing_or_wrong_code_and_takes_the_right_one(
    trader, enrol, settings
):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device, _codes = enrol(trader)
    missing = obtain()
    assert missing.status_code == 401
    assert missing.json()["code"] == "otp_required"
    assert "access" not in missing.json()
    wrong = obtain(otp=wrong_code(device))
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "otp_invalid"
    right = obtain(otp=totp_code(device))
    assert right.status_code == 200
    access = AccessToken(right.json()["access"])
    assert access[services.SECOND_FACTOR_CLAIM] is True
    # A refreshed access token keeps the mark.
    refreshed = APIClient().post(
        "/api/v1/auth/token/refresh/", {"refresh": right.json()["refresh"]}, format="json"
    )
    assert AccessToken(refreshed.json()["access"])[services.SECOND_FACTOR_CLAIM] is True


def test_a_wrong_password_with_a_right_code_is_still_a_wrong_password(trader, enrol):
    device, _codes = enrol(trader)
    response = obtain(password="wrong-password", otp=totp_code(device))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_a_recovery_code_gets_a_token_once(trader, enrol):
    _device, codes = enrol(trader)
    assert obtain(otp=codes[3]).status_code == 200
    reused = obtain(otp=codes[3])
    assert reused.status_code == 401
    assert reused.json()["code"] == "otp_invalid"
    assert StaticToken.objects.filter(device__user=trader).count() == 9


def test_a_token_without_2fa_has_no_claim(trader):
    response = obtain()
    assert response.status_code == 200
    assert services.SECOND_FACTOR_CLAIM not in AccessToken(response.json()["access"]).payload


# --- Required by setting or by an operator -----------------------------------------------------
@pytest.fixture(params=["setting", "operator"])
def two_factor_required(request, trader, settings):
    if request.param == "setting":
        settings.TWO_FACTOR_REQUIRED = "all"
    else:
        trader.two_factor_required = True
        trader.save()
    return trader


def test_where_required_a_user_not_enrolled_is_sent_to_enrol(two_factor_required):
    browser = Client()
    response = password_step(browser, next_url="/orders/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/security/?next=%2Forders%2F"
    # Every page but the security page sends there.
    assert browser.get("/orders/")["Location"] == "/accounts/security/?next=%2Forders%2F"
    page = browser.get("/accounts/security/?next=/orders/")
    assert page.status_code == 200
    assert "required for your account" in page.content.decode()
    device = TOTPDevice.objects.get(user=two_factor_required, confirmed=False)
    done = browser.post(
        "/accounts/security/?next=/orders/", {"action": "enrol", "otp": totp_code(device)}
    )
    assert done.status_code == 200
    assert 'href="/orders/"' in done.content.decode()
    # This session showed a code while enrolling: it is verified.
    assert browser.get("/orders/").status_code == 200


def test_where_required_the_api_refuses_a_user_not_enrolled(two_factor_required):
    response = obtain()
    assert response.status_code == 403
    assert response.json()["code"] == "otp_enrolment_required"
    # A token issued before it was required no longer opens the API.
    old = client_for(two_factor_required).get("/api/v1/broker-accounts/")
    assert old.status_code == 403
    assert old.json()["code"] == "otp_enrolment_required"


def test_where_required_a_token_without_the_claim_is_refused_and_one_with_it_works(
    two_factor_required, enrol
):
    device, _codes = enrol(two_factor_required)
    old = client_for(two_factor_required).get("/api/v1/broker-accounts/")
    assert old.status_code == 403
    assert old.json()["code"] == "otp_required"
    access = obtain(otp=totp_code(device)).json()["access"]
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert fresh.get("/api/v1/broker-accounts/").status_code == 200


def test_where_required_a_session_from_before_enrolment_must_log_in_again(trader, enrol, settings):
    browser = Client()
    password_step(browser)
    enrol(trader)  # in another session
    settings.TWO_FACTOR_REQUIRED = "all"
    response = browser.get("/orders/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/orders/"
    assert browser.get("/accounts/security/")["Location"].startswith("/accounts/login/")


def test_live_mode_requires_it_only_of_users_with_a_live_account(trader, make_user, settings):
    settings.TWO_FACTOR_REQUIRED = "live"
    paper_only = make_user("paperhands")
    assert not services.second_factor_required(paper_only)
    assert obtain().status_code == 200
    BrokerAccount.objects.create(
        user=trader, provider="alpaca", paper=False, label="Live", key_id="AKLIVE", secret="s"
    )
    assert services.second_factor_required(trader)
    response = obtain()
    assert response.status_code == 403
    assert response.json()["code"] == "otp_enrolment_required"


def test_the_operator_flag_is_in_the_admin(trader, make_user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    page = browser.get(f"/admin/accounts/user/{trader.pk}/change/")
    assert page.status_code == 200
    assert 'name="two_factor_required"' in page.content.decode()
    assert 'name="ip_allowlist"' in page.content.decode()


# --- Orders mode -------------------------------------------------------------------------------
def test_orders_mode_needs_a_verified_session_or_token_to_place(trader, enrol, settings):
    services.require_second_factor_for_orders(trader, verified=False)  # "none": no rule
    settings.TWO_FACTOR_REQUIRED = "orders"
    assert obtain().status_code == 200  # logging in needs no code in this mode
    with pytest.raises(services.SecondFactorRequired) as not_enrolled:
        services.require_second_factor_for_orders(trader, verified=False)
    assert not_enrolled.value.code == "otp_enrolment_required"
    assert not_enrolled.value.status_code == 403
    enrol(trader)
    with pytest.raises(services.SecondFactorRequired) as unverified:
        services.require_second_factor_for_orders(trader, verified=False)
    assert unverified.value.code == "otp_required"
    services.require_second_factor_for_orders(trader, verified=True)


def test_a_request_is_verified_by_its_tokens_claim_or_its_sessions_device(trader, enrol):
    class Request:
        def __init__(self, auth=None, user=None):
            self.auth, self.user = auth, user

    plain = AccessToken.for_user(trader)
    assert not second_factor_verified(Request(auth=plain))
    plain[services.SECOND_FACTOR_CLAIM] = True
    assert second_factor_verified(Request(auth=plain))

    device, _codes = enrol(trader)
    browser = Client()
    password_step(browser)
    browser.post("/accounts/login/code/", {"otp": totp_code(device)})
    response = browser.get("/")
    assert second_factor_verified(Request(user=response.wsgi_request.user))
    other = Client()
    other.force_login(trader)
    assert not second_factor_verified(Request(user=other.get("/").wsgi_request.user))


def test_an_order_page_refusing_for_want_of_a_second_factor_sends_to_enrol(trader):
    request = RequestFactory().post("/orders/new/")
    SessionMiddleware(lambda r: None).process_request(request)
    request._messages = FallbackStorage(request)
    request.user = trader
    refusal = services.refusal_for_missing_second_factor(trader)
    response = AccessMiddleware(lambda r: None).process_exception(request, refusal)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/security/?next=%2Forders%2Fnew%2F"
    assert AccessMiddleware(lambda r: None).process_exception(request, ValueError()) is None
