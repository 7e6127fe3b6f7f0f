from django.apps import AppConfig


class DppConfig(AppConfig):
    name = "dpp"
    verbose_name = "Platform core"

    def ready(self) -> None:
        # Registers the Bearer security scheme with drf-spectacular before any schema is built.
        from dpp import openapi  # noqa: F401
