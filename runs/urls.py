from django.urls import path

from runs import api

urlpatterns = [
    path("runs", api.RunCollectionApi.as_view(), name="run-collection"),
    path("runs/<str:run_id>", api.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<str:run_id>/cancel", api.RunCancelApi.as_view(), name="run-cancel"),
    path("results/<str:token>", api.ResultDownloadApi.as_view(), name="run-result-download"),
]
