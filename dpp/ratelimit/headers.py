"""The header fields of draft-ietf-httpapi-ratelimit-headers, as Structured Fields:

    RateLimit-Policy: "submit";q=60;w=60
    RateLimit: "submit";r=59;t=41

``q`` is the quota and ``w`` the window in seconds; ``r`` is what is left of the quota
and ``t`` the seconds until the window ends. Never the ``X-RateLimit-*`` fields.
"""

from dpp.ratelimit.engine import Decision
from dpp.ratelimit.policies import Policy

POLICY = "RateLimit-Policy"
STATE = "RateLimit"


def policy_field(policy: Policy) -> str:
    return f'"{policy.name}";q={policy.quota};w={policy.window}'


def state_field(decision: Decision) -> str:
    return f'"{decision.policy.name}";r={decision.remaining};t={decision.reset}'


def fields(decision: Decision) -> dict[str, str]:
    return {POLICY: policy_field(decision.policy), STATE: state_field(decision)}
