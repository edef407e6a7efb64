from django.urls import path

from . import views

urlpatterns = [
    path("", views.portfolio_page, name="portfolio"),
    path("trades.csv", views.trades_csv, name="portfolio-trades-csv"),
    path("lots.csv", views.lots_csv, name="portfolio-lots-csv"),
]
