from django.urls import path

from . import api

urlpatterns = [
    path("portfolio/history/", api.HistoryView.as_view(), name="api-portfolio-history"),
    path("portfolio/performance/", api.PerformanceView.as_view(), name="api-portfolio-performance"),
    path("portfolio/pnl/", api.PnlView.as_view(), name="api-portfolio-pnl"),
    path("portfolio/trades/", api.TradesView.as_view(), name="api-portfolio-trades"),
    path("portfolio/lots/", api.LotsView.as_view(), name="api-portfolio-lots"),
    path("fills/", api.FillListView.as_view(), name="api-fills"),
]
