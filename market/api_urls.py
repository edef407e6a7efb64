from django.urls import path

from . import api

urlpatterns = [
    path("market/quotes/latest/", api.LatestQuotesView.as_view(), name="api-quotes-latest"),
    path("market/bars/", api.BarsView.as_view(), name="api-bars"),
]
