"""Signed per-attempt callback URLs for async actions.

A token binds (action execution id, attempt) and carries its signing time;
``tracker`` serves the endpoint, ``workflows`` builds the URL that
``std.mistral_http`` and ``gust.http_job`` send as ``Gust-Callback-URL``.
No login is needed: the signature is the credential.
"""

from __future__ import annotations

import time

from django.core import signing

from workflows import conf

SALT = "gust.callback.v1"


class TokenForged(Exception):
    """The token was not signed by this installation."""


class TokenExpired(Exception):
    """The token is genuine but older than its time to live."""


def make_token(action_id: str, attempt: int) -> str:
    return signing.TimestampSigner(salt=SALT).sign_object({"a": action_id, "n": attempt})


def read_token(token: str, max_age: float) -> tuple[str, int]:
    """(action id, attempt); raises TokenExpired or TokenForged."""
    action_id, attempt, _ = read_token_with_age(token, max_age)
    return action_id, attempt


def read_token_with_age(token: str, max_age: float) -> tuple[str, int, float]:
    """(action id, attempt, seconds since it was signed); raises TokenExpired or TokenForged."""
    signer = signing.TimestampSigner(salt=SALT)
    try:
        data = signer.unsign_object(token, max_age=max_age)
        signed_at = signing.b62_decode(token.rsplit(signer.sep, 2)[1])
    except signing.SignatureExpired as exc:
        raise TokenExpired(str(exc)) from exc
    except (signing.BadSignature, ValueError, KeyError, TypeError, IndexError) as exc:
        raise TokenForged("invalid callback token") from exc
    return data["a"], int(data["n"]), max(time.time() - signed_at, 0.0)


def callback_url(action_id: str, attempt: int) -> str:
    base = conf.get("PUBLIC_URL").rstrip("/")
    return f"{base}/api/callbacks/{make_token(action_id, attempt)}"
