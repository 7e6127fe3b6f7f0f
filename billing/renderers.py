"""``text/csv`` for the statement and usage (RFC 4180: a header line, CRLF line ends).

The view names its columns (``csv_columns``); a paginated body contributes its
``results``. A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@`` …) is prefixed with ``'`` (OWASP's CSV-injection advice); numbers, negative
amounts included, are written as they are.
"""

import csv
import io
import re
from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        columns = renderer_context["view"].csv_columns
        rows = data["results"] if isinstance(data, Mapping) else data
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
        return buffer.getvalue().encode(self.charset)
