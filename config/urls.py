from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from dpp import metrics
from dpp import views as dpp_views

urlpatterns = [
    path("health", dpp_views.health, name="health"),
    path("readyz", dpp_views.readyz, name="readyz"),
    path("metrics", metrics.export, name="metrics"),
    path("problems/<slug:slug>", dpp_views.problem_page, name="problem-type"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="swagger-ui"),
    path("redoc", dpp_views.RedocView.as_view(url_name="openapi"), name="redoc"),
    path("admin/", admin.site.urls),
    path("v1/", include("billing.urls")),
    path("v1/", include("runs.urls")),
]

handler400 = "dpp.handlers.bad_request"
handler403 = "dpp.handlers.permission_denied"
handler404 = "dpp.handlers.not_found"
handler500 = "dpp.handlers.server_error"
