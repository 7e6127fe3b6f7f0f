from django.urls import path

from billing.api import BudgetApi

urlpatterns = [
    path("budget", BudgetApi.as_view(), name="budget"),
]
