"""Helpers for the sign-in security tests: authenticator codes made from a device's key."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from conftest import totp_code


def wrong_code(device: TOTPDevice) -> str:
    return f"{(int(totp_code(device)) + 1) % 10**device.digits:0{device.digits}d}"


@pytest.fixture
def enrol():
    """Enrol a user's authenticator through the services; returns (device, recovery codes)."""

    def enrol(user) -> tuple[TOTPDevice, list[str]]:
        device = services.start_enrolment(user).device
        return services.confirm_enrolment(user=user, otp=totp_code(device))

    return enrol
