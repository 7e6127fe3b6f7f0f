import io
import json
import logging

import pytest

from dpp.logging import JsonFormatter


@pytest.fixture
def json_logs():
    """Every log line, as the configured stdout handler would write it, parsed.

    The handler copies the formatter and filters of the real stdout handler (from
    settings.LOGGING), so the lines are exactly what production prints.
    """
    root = logging.getLogger()
    configured = next(h for h in root.handlers if isinstance(h.formatter, JsonFormatter))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    root.addHandler(handler)

    class Lines:
        @property
        def raw(self) -> str:
            return stream.getvalue()

        def all(self) -> list[dict]:
            return [json.loads(line) for line in self.raw.splitlines() if line.strip()]

        def access(self) -> list[dict]:
            return [line for line in self.all() if line["logger"] == "dpp.access"]

    yield Lines()
    root.removeHandler(handler)
