"""Broker secrets stored with the key derived from SECRET_KEY move to FIELD_ENCRYPTION_KEY.

The format is unchanged (a Fernet token); reading with the decrypt-only legacy keys and saving
encrypts with the first FIELD_ENCRYPTION_KEY. Rows no key decrypts stay as they are.
"""

from django.db import migrations

from accounts.encryption import reencrypt_column


def reencrypt(apps, schema_editor):
    reencrypt_column(apps.get_model("accounts", "BrokerAccount"), "secret")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_user_tokens_valid_after")]

    operations = [migrations.RunPython(reencrypt, migrations.RunPython.noop)]
