"""The API's JWT authentication: simplejwt's, refusing tokens issued before a revocation."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from .models import User
from .selectors import user_with_broker_accounts
from .services import token_revoked


class _WithBrokerAccounts:
    """simplejwt's user look-up (`user_model.objects.get(pk=...)`, then its own checks)
    answered by one read that brings the user's broker accounts along."""

    DoesNotExist = User.DoesNotExist

    class objects:  # the manager's name, as simplejwt calls it
        @staticmethod
        def get(**lookup):
            (user_id,) = lookup.values()
            user = user_with_broker_accounts(user_id)
            if user is None:
                raise User.DoesNotExist
            return user


class RevocableJWTAuthentication(JWTAuthentication):
    """Only "access" tokens (simplejwt's AUTH_TOKEN_CLASSES), never a stream token."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_model = _WithBrokerAccounts

    def get_user(self, validated_token):
        user = super().get_user(validated_token)  # loads the user row: the check costs nothing
        if token_revoked(user, validated_token.get("iat", 0)):
            raise AuthenticationFailed(
                "This token was revoked; log in again.", code="token_revoked"
            )
        return user


class RevocableJWTScheme(SimpleJWTScheme):
    """The OpenAPI schema describes it as simplejwt's bearer scheme."""

    target_class = RevocableJWTAuthentication
