from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # Adds the broker and storage checks to /readyz.
        from runs import checks  # noqa: F401
