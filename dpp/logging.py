"""JSON log lines with the request/trace/tenant/run context, and never a secret."""

import logging
import re
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from dpp import context
from dpp.tracing import current_ids

# An API key is dpp_<prefix>_<secret>; a Bearer header may also slip into a message.
_API_KEY = re.compile(r"dpp_[A-Za-z0-9]{4,}_[A-Za-z0-9_\-]{16,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"'\\,;]+")


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[REDACTED]", _API_KEY.sub("dpp_[REDACTED]", text))


class ContextFilter(logging.Filter):
    """Copies the context variables onto each record, without overriding explicit extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in {**context.current(), **current_ids()}.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(_BaseJsonFormatter):
    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        log_record["level"] = record.levelname
        log_record["logger"] = record.name

    def process_log_record(self, log_record: dict) -> dict:
        first = {k: log_record.pop(k, "") for k in ("timestamp", "level", "logger", "message")}
        return {**first, **log_record}

    def serialize_log_record(self, log_record: dict) -> str:
        # Redact the finished line, so no field, nested value, traceback or object rendered
        # by the JSON encoder can carry a key past this point.
        return redact(super().serialize_log_record(log_record))
