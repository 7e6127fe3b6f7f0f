from django.urls import path

from billing.api import BudgetApi, LedgerApi, UsageApi

urlpatterns = [
    path("budget", BudgetApi.as_view(), name="budget"),
    path("ledger", LedgerApi.as_view(), name="ledger"),
    path("usage", UsageApi.as_view(), name="usage"),
]
