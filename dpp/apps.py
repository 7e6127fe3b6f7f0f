from django.apps import AppConfig


class DppConfig(AppConfig):
    name = "dpp"
    verbose_name = "Platform core"
