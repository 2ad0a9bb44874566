"""The API key check of both answer paths (the endpoint's, ``_app._authorise``, and the quick
path's, ``_quick``): one rule, so that neither can let through what the other refuses."""

from __future__ import annotations

import hmac

__all__ = ["bearer_matches"]


def bearer_matches(authorization: str, key: str) -> bool:
    """Whether the ``Authorization`` header value ``authorization`` is ``Bearer <key>`` (the
    scheme in any case, the token stripped), compared in constant time: ``hmac.compare_digest``
    on bytes (str would refuse non-ASCII keys), ``surrogatepass`` encoding any str, also the
    surrogates of undecodable header bytes."""
    scheme, _, token = authorization.partition(" ")
    same = hmac.compare_digest(
        token.strip().encode("utf-8", "surrogatepass"), key.encode("utf-8", "surrogatepass")
    )
    return scheme.lower() == "bearer" and same
