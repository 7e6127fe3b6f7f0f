from django.contrib.admin.apps import AdminConfig


class DppAdminConfig(AdminConfig):
    """``django.contrib.admin`` with DPP's site (config/admin.py) as ``admin.site``."""

    default_site = "config.admin.DppAdminSite"
