from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("login/", views.log_in, name="login"),
    path("login/code/", views.log_in_code, name="login-code"),
    path("security/", views.security, name="security"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("password/", views.PasswordChange.as_view(), name="password-change"),
    path("brokers/", views.broker_accounts, name="broker-accounts"),
    path(
        "brokers/<int:account_id>/default/",
        views.make_default_broker_account,
        name="broker-account-default",
    ),
    path(
        "brokers/<int:account_id>/remove/",
        views.remove_broker_account,
        name="broker-account-remove",
    ),
    path("stream-token/", views.stream_token, name="stream-token"),
]
