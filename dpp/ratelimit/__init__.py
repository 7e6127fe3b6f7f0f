"""Rate limiting, in one place.

- ``policies``: what is limited (``submit``, ``poll``, ``concurrency``) and the set of
  policies that applies to one caller, supplied by the plans through
  ``settings.DPP_RATE_LIMIT_POLICIES``;
- ``engine``: the fixed-window counters (atomic in Redis, local without it);
- ``headers``: the ``RateLimit-Policy`` and ``RateLimit`` header fields;
- ``errors``: the ``rate-limited`` problem a violated policy answers with;
- ``middleware``: applies ``submit`` and ``poll`` to every ``/v1/`` request (``concurrency``
  is checked by runs inside the submit transaction, the only place it can be exact);
- ``docs``: the generator of docs/rate-limits.md.
"""
