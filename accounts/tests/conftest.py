"""Helpers for the sign-in security tests: authenticator codes made from a device's key."""

from __future__ import annotations

import time

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services


def totp_code(device: TOTPDevice) -> str:
    """The code an authenticator app would show, for the earliest time step the device still
    accepts (each step's code verifies once; its tolerance allows one step either side)."""
    device.refresh_from_db()
    now_step = int((time.time() - device.t0) // device.step) + device.drift
    step = max(now_step - device.tolerance, device.last_t + 1)
    assert step <= now_step + device.tolerance, "this device has used up its codes for now"
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = device.t0 + step * device.step + device.step / 2
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    return f"{(int(totp_code(device)) + 1) % 10**device.digits:0{device.digits}d}"


@pytest.fixture
def enrol():
    """Enrol a user's authenticator through the services; returns (device, recovery codes)."""

    def enrol(user) -> tuple[TOTPDevice, list[str]]:
        device = services.start_enrolment(user).device
        return services.confirm_enrolment(user=user, otp=totp_code(device))

    return enrol
