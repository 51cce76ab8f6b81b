"""Map an HTTP answer to the provider's exceptions: the one place that knows the status table.

| HTTP status / eTelecom code                         | exception                         | retried |
|-----------------------------------------------------|-----------------------------------|---------|
| 401 ``unauthenticated``                             | EtelecomAuthError                 | no      |
| 403 ``permission_denied`` (any 403 but below)       | EtelecomAuthError                 | no      |
| 403 ``resource_exhausted``                          | EtelecomRateLimitError            | yes     |
| 429                                                 | EtelecomRateLimitError            | yes     |
| 400 ``invalid_argument``/``malformed``/...          | EtelecomBadRequestError           | no      |
| 404 ``bad_route``/``not_found``                     | EtelecomNotFoundError             | no      |
| 408                                                 | EtelecomTransientError            | yes     |
| 409, 412, 501, other 4xx                            | EtelecomBadRequestError           | no      |
| 500, 502, 503, 504, other 5xx                       | EtelecomTransientError            | yes     |
| 200 with a body that is not the documented JSON     | EtelecomMalformedResponseError    | yes     |

Which failures an Airflow retry can fix is decided above this layer, in
:mod:`airflow_provider_etelecom.failure_policy`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomError,
    EtelecomNotFoundError,
    EtelecomRateLimitError,
    EtelecomTransientError,
)

__all__ = ["error_from_response"]

_ADVICE = {
    EtelecomAuthError: (
        "Check the API key on the connection: a shop uses its api_key with a /v1/shop base URL, a partner "
        "uses the shop's shop_key with a /v1/partner base URL."
    ),
    EtelecomNotFoundError: (
        "Check the connection's Base URL: it must end at /v1/shop or /v1/partner, without a method suffix."
    ),
    EtelecomRateLimitError: "The platform is rate limiting this key; the provider backs off and retries.",
    EtelecomTransientError: "The platform or the network failed; the provider retries within its budget.",
    EtelecomBadRequestError: "The platform refused the request; fix the parameters named above.",
}
#: For a call that acts on the world (``RequestConsent``): the advice must not promise a retry.
NOT_RESENT_ADVICE = (
    "The request may have reached eTelecom, so the provider does not send it again by itself: check "
    "whether the consent exists (ListRequestConsent) before sending it again."
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: seconds (``"2"``, ``"1.5"``) or an HTTP date.

    :return: seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())


def _error_details(body: bytes) -> tuple[str | None, str | None, dict[str, str]]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None, {}
    if not isinstance(data, dict):
        return None, None, {}
    code = data.get("code")
    msg = data.get("msg")
    meta = data.get("meta")
    return (
        code if isinstance(code, str) else None,
        msg[:500] if isinstance(msg, str) else None,
        {str(k): str(v)[:200] for k, v in meta.items()} if isinstance(meta, dict) else {},
    )


def error_from_response(
    endpoint: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    idempotent: bool = True,
) -> EtelecomError:
    """Build the exception for a non-200 answer.

    :param endpoint: the API method, e.g. ``Zalo/ListRequestConsent``.
    :param status: the HTTP status.
    :param body: the raw body (eTelecom's ``{"code", "msg", "meta"}``, or a gateway's HTML page).
    :param headers: the response headers (for ``Retry-After``).
    :param idempotent: ``False`` for a call that is never re-sent once it reached the server, so
        the message of a retryable status says so instead of promising a retry.
    :return: the matching :class:`~airflow_provider_etelecom.exceptions.EtelecomError` subclass.
    """
    code, msg, meta = _error_details(body)
    cls: type[EtelecomError]
    if status == 401:
        cls = EtelecomAuthError
    elif status == 403:
        cls = EtelecomRateLimitError if code == "resource_exhausted" else EtelecomAuthError
    elif status == 429:
        cls = EtelecomRateLimitError
    elif status == 404:
        cls = EtelecomNotFoundError
    elif status == 408 or (status >= 500 and status != 501):
        cls = EtelecomTransientError
    else:
        cls = EtelecomBadRequestError
    described = f"HTTP {status}" + (f" {code}" if code else "")
    if msg:
        described += f": {msg}"
    if meta:
        described += " (" + ", ".join(f"{k}={v}" for k, v in meta.items()) + ")"
    advice = _ADVICE[cls]
    if not idempotent and issubclass(cls, EtelecomTransientError):
        advice = NOT_RESENT_ADVICE
    message = f"eTelecom {endpoint} failed with {described}. {advice}"
    if cls is EtelecomRateLimitError:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        return EtelecomRateLimitError(
            message, retry_after=retry_after, endpoint=endpoint, status=status, code=code, msg=msg, meta=meta
        )
    return cls(message, endpoint=endpoint, status=status, code=code, msg=msg, meta=meta)
