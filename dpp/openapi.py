"""OpenAPI pieces every API view shares: the Bearer security scheme and problem responses.

Views document their errors next to their code::

    @extend_schema(responses={200: BudgetSerializer, **problem_responses(401, 403, 429)})

which renders each status as ``application/problem+json`` with the ``Problem`` schema and
names the problem types (from the registry) that can answer with it.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_serializer
from rest_framework import serializers

from dpp.problem_types import PROBLEM_TYPES
from dpp.problems import CONTENT_TYPE


@extend_schema_serializer(component_name="ProblemFieldError")
class ProblemFieldErrorSerializer(serializers.Serializer):
    pointer = serializers.CharField(
        help_text="JSON Pointer (RFC 6901) into the request body; empty for the whole body."
    )
    detail = serializers.CharField()


@extend_schema_serializer(component_name="Problem")
class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem document. Types may add extension members."""

    type = serializers.CharField(
        help_text="`/problems/<slug>`: GET it (relative to the API) for the explanation."
    )
    title = serializers.CharField(help_text="Short summary of the problem type.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What went wrong in this occurrence.")
    instance = serializers.CharField(
        help_text="`urn:dpp:request:<id>`, equal to the `X-Request-ID` response header."
    )
    errors = ProblemFieldErrorSerializer(
        many=True,
        required=False,
        help_text="Present on validation problems: one entry per failing field.",
    )


def _description(status: int) -> str:
    slugs = [t.slug for t in PROBLEM_TYPES.values() if t.status == status]
    if not slugs:
        return "Problem"
    return "Problem: " + ", ".join(f"`/problems/{slug}`" for slug in slugs)


def problem_responses(*statuses: int) -> dict:
    """``extend_schema(responses=...)`` entries: each status as a problem+json response."""
    for status in statuses:
        if not 400 <= status <= 599:
            raise ValueError(f"problem responses are 4xx/5xx, not {status}")
    return {
        (status, CONTENT_TYPE): OpenApiResponse(ProblemSerializer, description=_description(status))
        for status in statuses
    }


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "dpp.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "dpp_<prefix>_<secret>",
            "description": "`Authorization: Bearer dpp_<prefix>_<secret>`. A missing, "
            "malformed, unknown or revoked key answers 401 `/problems/unauthenticated`.",
        }
