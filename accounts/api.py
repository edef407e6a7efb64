"""JWT token endpoints and broker-account management (thin: logic is in services)."""

from __future__ import annotations

from django.contrib.auth.models import update_last_login
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from tradedesk.client_ip import ClientAddressThrottle, client_address
from tradedesk.ratelimit import RateLimitExceeded

from . import selectors, services
from .models import BrokerAccount, User


class TokenThrottle(ClientAddressThrottle):
    scope = "token"


class LoginRateLimited(exceptions.Throttled):
    def __init__(self, limited: RateLimitExceeded):
        exceptions.APIException.__init__(
            self, {"detail": limited.message, "code": "login_rate_limited"}
        )
        self.wait = limited.retry_after  # DRF sends it as Retry-After


class TokenObtainSerializer(TokenObtainPairSerializer):
    """Username and password, and `otp` (a TOTP or recovery code) for users with 2FA."""

    otp = serializers.CharField(required=False, allow_blank=True, max_length=32, write_only=True)

    def validate(self, attrs):
        try:
            login = services.authenticate_login(
                username=attrs[self.username_field],
                password=attrs["password"],
                otp=attrs.get("otp", ""),
                address=client_address(self.context["request"]),
            )
        except RateLimitExceeded as limited:
            raise LoginRateLimited(limited) from None
        except services.LoginRefused as refused:
            refusal = (
                exceptions.AuthenticationFailed
                if refused.status == 401
                else (exceptions.PermissionDenied)
            )
            raise refusal({"detail": refused.message, "code": refused.code}) from None
        if login.must_enrol:
            raise services.refusal_for_missing_second_factor(login.user)
        refresh = self.get_token(login.user)
        if login.device is not None:
            refresh[services.SECOND_FACTOR_CLAIM] = True  # copied into its access tokens
        if jwt_settings.UPDATE_LAST_LOGIN:
            update_last_login(None, login.user)
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


class TokenView(TokenObtainPairView):
    serializer_class = TokenObtainSerializer
    throttle_classes = [TokenThrottle]


class RevocableTokenRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, refusing (401, never a 500) a token whose user was deleted,
    deactivated or revoked since it was issued."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user = User.objects.filter(pk=refresh.get(jwt_settings.USER_ID_CLAIM)).first()
        if (
            user is None
            or not jwt_settings.USER_AUTHENTICATION_RULE(user)
            or services.token_revoked(user, refresh.get("iat", 0))
        ):
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            )
        return super().validate(attrs)


class TokenRefresh(TokenRefreshView):
    throttle_classes = [TokenThrottle]
    serializer_class = RevocableTokenRefreshSerializer


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class LogoutView(APIView):
    """Blacklists the given refresh token (its access tokens end with their short lifetime;
    a password change or an operator's revocation ends them at once)."""

    permission_classes = [AllowAny]  # the refresh token is the credential
    throttle_classes = [TokenThrottle]

    @extend_schema(request=LogoutSerializer, responses={204: None})
    def post(self, request):
        parsed = LogoutSerializer(data=request.data)
        parsed.is_valid(raise_exception=True)
        try:
            services.log_out(refresh=parsed.validated_data["refresh"])
        except TokenError as error:
            raise InvalidToken(error.args[0]) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class BrokerAccountSerializer(serializers.ModelSerializer):
    key_id_last4 = serializers.CharField(read_only=True)

    class Meta:
        model = BrokerAccount
        fields = ["id", "provider", "paper", "label", "key_id_last4", "is_default", "created_at"]
        read_only_fields = fields


class LinkBrokerAccountSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=[c for c, _ in BrokerAccount.PROVIDERS])
    label = serializers.CharField(max_length=100)
    paper = serializers.BooleanField(default=True)
    key_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    secret = serializers.CharField(
        max_length=256, required=False, allow_blank=True, default="", write_only=True
    )
    is_default = serializers.BooleanField(default=False)
    confirm_live = serializers.BooleanField(default=False)


class BrokerAccountListView(APIView):
    @extend_schema(responses=BrokerAccountSerializer(many=True))
    def get(self, request):
        accounts = selectors.active_broker_accounts(request.user)
        return Response(BrokerAccountSerializer(accounts, many=True).data)

    @extend_schema(request=LinkBrokerAccountSerializer, responses={201: BrokerAccountSerializer})
    def post(self, request):
        parsed = LinkBrokerAccountSerializer(data=request.data)
        parsed.is_valid(raise_exception=True)
        try:
            account = services.link_broker_account(user=request.user, **parsed.validated_data)
        except services.LinkError as error:
            return Response(
                {"errors": [{"code": error.code, "field": error.field, "message": error.message}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(BrokerAccountSerializer(account).data, status=status.HTTP_201_CREATED)


class BrokerAccountDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, account_id: str):
        account = selectors.broker_account_for(request.user, account_id)
        services.unlink_broker_account(account)
        return Response(status=status.HTTP_204_NO_CONTENT)
