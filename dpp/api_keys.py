"""API key format and hashing: ``dpp_<prefix>_<secret>``, only an HMAC of the secret kept."""

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from django.conf import settings

_ALPHABET = string.ascii_letters + string.digits
PREFIX_LENGTH = 12
# 43 base62 characters carry 256 bits of randomness.
SECRET_LENGTH = 43
_TOKEN = re.compile(rf"^dpp_([a-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$")


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    secret: str


def new_prefix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def format_token(prefix: str, secret: str) -> str:
    return f"dpp_{prefix}_{secret}"


def parse_token(token: str) -> ParsedKey | None:
    match = _TOKEN.match(token)
    return ParsedKey(prefix=match[1], secret=match[2]) if match else None


def hash_secret(secret: str) -> str:
    return hmac.new(
        settings.DPP_API_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256
    ).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
