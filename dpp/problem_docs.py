"""``docs/problems.md``, rendered from the problem-type registry (``dpp_problems_doc``)."""

from dpp.problem_types import PROBLEM_TYPES

_HEADER = """\
# Problem types

<!-- Generated from dpp/problem_types.py by `python manage.py dpp_problems_doc`.
     Do not edit by hand; `python manage.py dpp_problems_doc --check` fails when stale. -->

Every error response of the API, on every path, is an RFC 9457 problem document with
the media type `application/problem+json`:

```json
{
  "type": "/problems/validation-error",
  "title": "Validation failed",
  "status": 422,
  "detail": "1 field(s) failed validation.",
  "instance": "urn:dpp:request:4f1c2a9e0b7d4e5f8a6b3c2d1e0f9a8b",
  "errors": [{"pointer": "/reservation/max_cost_usd", "detail": "A valid number is required."}]
}
```

- `type` is a URI relative to the API; `GET` it (for example
  `GET /problems/validation-error`) for the page below. Branch on `type`, not on `title`
  or `detail`.
- `instance` is `urn:dpp:request:` followed by the `X-Request-ID` response header, the
  same id as in the server's logs. Quote it to support.
- `errors` (validation problems) lists each failing field with a JSON Pointer (RFC 6901)
  into the request body.
- Some types add members of their own, described with the type.

"""


def render_markdown() -> str:
    types = list(PROBLEM_TYPES.values())
    lines = [_HEADER.rstrip("\n"), "", "| Type | Status | Title |", "|---|---|---|"]
    lines += [f"| [`{t.uri}`](#{t.slug}) | {t.status} | {t.title} |" for t in types]
    for t in types:
        lines += ["", f"## {t.slug}", "", f"`{t.uri}` · HTTP {t.status} · {t.title}", ""]
        lines.append(t.description)
    return "\n".join(lines) + "\n"
