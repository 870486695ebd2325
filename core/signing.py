"""Signing pickled artifacts, so a shared store cannot be made to run foreign code.

Content addressing proves an object is the one its record names, not who wrote the
record: anyone who can write the store can store a pickle under its own digest and point
a record at it. With a signing key (``TETHER_SIGNING_KEY`` in the environment, never
written anywhere), every pickled artifact tether stores carries an HMAC-SHA256 of its
digest, and tether refuses to unpickle an artifact whose signature is missing or wrong.
See docs/security.md for the trust model.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .errors import IntegrityError

KEY_VARIABLE = "TETHER_SIGNING_KEY"


def signing_key() -> bytes | None:
    """The key from ``TETHER_SIGNING_KEY``, or None when artifacts are not signed."""
    value = os.environ.get(KEY_VARIABLE, "")
    return value.encode() if value else None


def sign(digest: str, key: bytes) -> str:
    """The signature of an object digest: ``hmac-sha256:<hex>``."""
    return "hmac-sha256:" + hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def check_signature(digest: str, signature: str | None, *, what: str) -> None:
    """Raise IntegrityError unless ``signature`` is the signature of ``digest`` under the
    configured key; without a key there is nothing to check."""
    key = signing_key()
    if key is None:
        return
    if not signature:
        raise IntegrityError(f"{what} is not signed, and {KEY_VARIABLE} is set: refusing to unpickle it "
                             "(it was stored without the key, or its record was altered)")
    if not hmac.compare_digest(signature, sign(digest, key)):
        raise IntegrityError(f"{what} has a signature that does not match {KEY_VARIABLE}: refusing to unpickle it")
