"""Settings come from the environment, with embedded defaults that need no server."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tradedesk import settings as project_settings

BASE_DIR = Path(project_settings.BASE_DIR)
FERNET_KEY = "a2V5LWZvci10aGUtc2V0dGluZ3MtdGVzdHMtMDAwMDA="  # 32 bytes, url-safe base64
# The variables these tests set themselves; the rest of the environment passes through.
_CONTROLLED = (
    "TRADEDESK_ENV",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "PORT",
    "HOST",
    "TRADEDESK_SIM_ALWAYS_OPEN",
    "MAX_ORDER_QUANTITY",
    "ORDER_SYNC_INTERVAL",
)

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "SECRET_KEY": settings.SECRET_KEY,
    "ENGINE": settings.DATABASES["default"]["ENGINE"],
    "NAME": str(settings.DATABASES["default"]["NAME"]),
    "CHANNEL_BACKEND": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "CACHE_BACKEND": settings.CACHES["default"]["BACKEND"],
    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    "CELERY_FOLDERS": sorted(
        value for key, value in getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).items()
        if key.endswith("_folder") or key.startswith("data_folder")
    ),
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "PORT": settings.PORT,
    "HOST": settings.HOST,
    "SIM_ALWAYS_OPEN": settings.TRADEDESK_SIM_ALWAYS_OPEN,
    "MAX_ORDER_QUANTITY": str(settings.MAX_ORDER_QUANTITY),
    "ORDER_SYNC_INTERVAL": settings.ORDER_SYNC_INTERVAL,
}))
"""


def run_django(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
    environment |= {
        "DJANGO_SETTINGS_MODULE": "tradedesk.settings",
        "TRADEDESK_DATA_DIR": str(data_dir),
        **env,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in_subprocess(data_dir: Path, **env: str) -> dict:
    result = run_django(["-c", PRINT_SETTINGS], data_dir, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("false", False)],
)
def test_env_bool_parses_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("TRADEDESK_TEST_FLAG", raw)
    assert project_settings.env_bool("TRADEDESK_TEST_FLAG", not expected) is expected


def test_env_helpers_fall_back_to_their_defaults_when_unset_or_empty(monkeypatch):
    monkeypatch.delenv("TRADEDESK_TEST_VALUE", raising=False)
    assert project_settings.env_bool("TRADEDESK_TEST_VALUE", True) is True
    assert project_settings.env_int("TRADEDESK_TEST_VALUE", 7) == 7
    assert project_settings.env_decimal("TRADEDESK_TEST_VALUE", "1.5") == Decimal("1.5")
    monkeypatch.setenv("TRADEDESK_TEST_VALUE", "")
    assert project_settings.env_bool("TRADEDESK_TEST_VALUE", True) is True
    assert project_settings.env_int("TRADEDESK_TEST_VALUE", 7) == 7
    monkeypatch.setenv("TRADEDESK_TEST_VALUE", " a.example, ,b.example ")
    assert project_settings.env_list("TRADEDESK_TEST_VALUE", "") == ["a.example", "b.example"]


def test_embedded_defaults_need_no_server(tmp_path):
    values = settings_in_subprocess(tmp_path)
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(tmp_path / "tradedesk.sqlite3")
    assert values["CHANNEL_BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert values["CELERY_BROKER_URL"] == "filesystem://"
    # Every folder of the file-based Celery broker (its control table too) is in the data dir.
    assert len(values["CELERY_FOLDERS"]) == 4
    assert all(folder.startswith(str(tmp_path)) for folder in values["CELERY_FOLDERS"])
    assert values["SIM_ALWAYS_OPEN"] is True
    assert values["DEBUG"] is False
    assert (values["HOST"], values["PORT"]) == ("127.0.0.1", 8000)
    assert "127.0.0.1" in values["ALLOWED_HOSTS"]


def test_database_and_redis_urls_switch_to_postgres_and_redis(tmp_path):
    redis_url = "redis://cache.internal:6379/2"
    values = settings_in_subprocess(
        tmp_path,
        DATABASE_URL="postgres://desk:pw@db.internal:5432/tradedesk",
        REDIS_URL=redis_url,
        TRADEDESK_SIM_ALWAYS_OPEN="false",
        MAX_ORDER_QUANTITY="250.5",
        ORDER_SYNC_INTERVAL="15",
        PORT="9001",
        HOST="0.0.0.0",
        DEBUG="1",
        ALLOWED_HOSTS="desk.example.com,api.example.com",
    )
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert values["NAME"] == "tradedesk"
    assert values["CHANNEL_BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert values["CACHE_BACKEND"] == "tradedesk.rediscache.RedisCache"  # Django's, kept clients
    assert values["CELERY_BROKER_URL"] == redis_url
    assert values["SIM_ALWAYS_OPEN"] is False
    assert values["MAX_ORDER_QUANTITY"] == "250.5"
    assert values["ORDER_SYNC_INTERVAL"] == 15
    assert (values["HOST"], values["PORT"], values["DEBUG"]) == ("0.0.0.0", 9001, True)
    assert values["ALLOWED_HOSTS"] == ["desk.example.com", "api.example.com"]


def test_postgres_is_driven_by_psycopg_3():
    import psycopg

    assert int(psycopg.__version__.split(".")[0]) == 3


def test_secret_key_is_generated_once_and_kept_in_the_data_dir(tmp_path):
    first = settings_in_subprocess(tmp_path)["SECRET_KEY"]
    second = settings_in_subprocess(tmp_path)["SECRET_KEY"]
    key_file = tmp_path / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Another data dir (another installation) gets its own key.
    other = tmp_path / "other"
    assert settings_in_subprocess(other)["SECRET_KEY"] != first


def test_secret_key_from_the_environment_wins_and_is_not_written(tmp_path):
    assert settings_in_subprocess(tmp_path, SECRET_KEY="k" * 50)["SECRET_KEY"] == "k" * 50
    assert not (tmp_path / "secret_key").exists()


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = run_django(
        ["-c", PRINT_SETTINGS], tmp_path, TRADEDESK_ENV="production", ALLOWED_HOSTS="d.example"
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when TRADEDESK_ENV=production" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    result = run_django(
        ["-c", PRINT_SETTINGS],
        tmp_path,
        TRADEDESK_ENV="production",
        SECRET_KEY="k" * 50,
        FIELD_ENCRYPTION_KEY=FERNET_KEY,
    )
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_production_refuses_to_start_without_a_field_encryption_key(tmp_path):
    """The broker-secret key is its own setting: never derived from SECRET_KEY, and the
    embedded development key (a public value) is not used in production."""
    result = run_django(
        ["-c", PRINT_SETTINGS],
        tmp_path,
        TRADEDESK_ENV="production",
        SECRET_KEY="k" * 50,
        ALLOWED_HOSTS="d.example",
    )
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY must be set when TRADEDESK_ENV=production" in result.stderr


def test_a_field_encryption_key_that_is_not_a_fernet_key_is_refused(tmp_path):
    result = run_django(
        ["-c", PRINT_SETTINGS], tmp_path, FIELD_ENCRYPTION_KEY=f"{FERNET_KEY},not-a-key"
    )
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY holds a value that is not a Fernet key" in result.stderr


def test_production_settings_pass_check_deploy_with_no_warnings(tmp_path):
    result = run_django(
        ["manage.py", "check", "--deploy"],
        tmp_path,
        TRADEDESK_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50)[:50],
        FIELD_ENCRYPTION_KEY=FERNET_KEY,
        ALLOWED_HOSTS="desk.example.com",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
