"""What a client needs to reach eTelecom, validated once: the Base URL, the key, timeouts, retries.

No Airflow import here. The hook reads a Connection's fields into :meth:`ClientConfig.build`
(:func:`base_url_from_fields` for a connection given as host, schema and port); the URL rules
(the account type's path, https but for loopback) live here and nowhere else.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from airflow_provider_etelecom.client.validation import validate_number, validate_timezone
from airflow_provider_etelecom.exceptions import EtelecomConfigError, EtelecomValidationError

__all__ = ["base_url_from_fields"]

log = logging.getLogger(__name__)

#: Base URLs by account type (inferred with high confidence from eTelecom's docs).
DEFAULT_BASE_URLS = {
    "shop": "https://api.etelecom.vn/v1/shop",
    "partner": "https://api.etelecom.vn/v1/partner",
}
ACCOUNT_TYPES = frozenset(DEFAULT_BASE_URLS)


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how long to wait, and when to give up.

    Retried: network errors, timeouts, dropped connections, truncated or non-JSON 200 bodies,
    408, 429, 403 ``resource_exhausted``, 5xx except 501 (see :mod:`.errors`). Waits grow
    exponentially with jitter, a ``Retry-After`` is honoured, and both the number of retries and
    the total time one request may spend (waits included) are capped.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param max_retry_time: seconds one request may spend from its first attempt to its last.
    :param backoff_initial: first wait, in seconds, before jitter.
    :param backoff_max: the longest wait between two attempts (except a longer ``Retry-After``).
    """

    max_retries: int = 5
    max_retry_time: float = 300.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Return the wait before retry ``retry_number`` (1-based): exponential, half jittered."""
        ceiling: float = min(self.backoff_max, self.backoff_initial * 2 ** (retry_number - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Base URLs whose missing account path was already reported (said once per process, not per client:
#: a trigger builds a fresh client on every check).
_COMPLETED_BASE_URLS: set[str] = set()
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _api_base_url(raw: str, kind: str | None) -> tuple[str, str, bool]:
    """Turn what a user typed as Base URL into the URL the client calls.

    A host without a path (``https://api.etelecom.vn``) or with ``/v1`` only gets the account
    type's path; ``/v1/shop`` and ``/v1/partner`` (after any prefix, for a gateway) are kept, with
    trailing slashes removed and the scheme, host and account path in lower case. Anything else
    cannot be an eTelecom API URL: the client appends ``.Service/Method`` to the base URL, so a
    wrong path would only show up as a 404 or, without a path, as an unreachable host
    ``api.etelecom.vn.Misc``, retried as a network error.

    :param raw: the Base URL, stripped; empty for the account type's default.
    :param kind: the account type given by the user, if any.
    :return: ``(base URL, account type its path names, whether the path was added)``.
    :raises EtelecomConfigError: naming what to change in the Base URL.
    """
    if not raw:
        default_kind = kind or "shop"
        return DEFAULT_BASE_URLS[default_kind], default_kind, False
    example = f"https://api.etelecom.vn/v1/{kind or 'shop'}"
    if "://" not in raw:
        raise EtelecomConfigError(
            f"Base URL {raw!r} must be a full URL with scheme and host, such as {example!r}: write "
            f"'https://{raw.lstrip('/')}'."
        )
    parts = urlsplit(raw)
    if parts.username is not None or parts.password is not None:
        # Never echo the URL: its user-info part may hold a secret.
        raise EtelecomConfigError(
            "Base URL must not carry a user name or password ('user:secret@host'): remove them; the key "
            "goes in the connection's 'API key' (password) field."
        )
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise EtelecomConfigError(
            f"Base URL {raw!r} must be a full URL with scheme (https://) and host, such as {example!r}."
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise EtelecomConfigError(
            f"Base URL {raw!r} has an invalid port: use a number from 1 to 65535 after the host, or none "
            f"for the scheme's default ({_DEFAULT_PORTS[parts.scheme]})."
        )
    if "." in parts.path or parts.query or parts.fragment:
        raise EtelecomConfigError(
            f"Base URL {raw!r} must end at the account path (/v1/shop or /v1/partner), without a "
            f"method such as '.Zalo/ListRequestConsent': the provider appends '.Service/Method' itself."
        )
    path = parts.path.rstrip("/")
    prefix, _, last = path.rpartition("/")
    completed = False
    if path == "" or last.lower() == "v1":
        path = f"{prefix}/v1/{kind or 'shop'}"
        completed = True
    elif last.lower() in ACCOUNT_TYPES and prefix.lower().endswith("/v1"):
        path = f"{prefix[:-3]}/v1/{last.lower()}"
    else:
        raise EtelecomConfigError(
            f"Base URL {raw!r} has the path {parts.path!r}, which is not an eTelecom API path: end it at "
            f"/v1/shop or /v1/partner (such as {example!r}), or give only scheme and host "
            f"('https://api.etelecom.vn') to get the account type's path."
        )
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{path}", path.rsplit("/", 1)[-1], completed


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs, validated once. Build it with :meth:`build`.

    The API key is kept out of ``repr`` so that it cannot reach a log line through this object.
    """

    base_url: str
    api_key: str = field(repr=False)
    account_type: str = "shop"
    timeout: float = 60.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    normalize_phones: bool = True
    timezone: str | None = None
    filter_zone: ZoneInfo | None = None
    shown_zone: ZoneInfo | None = None
    client_date_filters: bool = False

    @classmethod
    def build(
        cls,
        *,
        base_url: str | None,
        api_key: str | None,
        account_type: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_time: float | None = None,
        allow_insecure_http: bool = False,
        normalize_phones: bool = True,
        timezone: str | None = None,
        platform_filter_zone: str | None = None,
        platform_shown_zone: str | None = None,
        date_filters_on_client: bool = False,
    ) -> ClientConfig:
        """Validate the settings of a connection and return the config.

        :param base_url: e.g. ``https://api.etelecom.vn/v1/shop``; scheme and host only
            (``https://api.etelecom.vn``) get the account type's path, said once in the log at INFO;
            empty means the default for the account type.
        :param api_key: the shop's ``api_key`` (shop) or the shop's ``shop_key`` (partner).
        :param account_type: ``shop`` or ``partner``; inferred from the base URL's path when empty.
        :param timeout: read timeout in seconds (the connect timeout is ``min(10, timeout)``).
        :param max_retries: retries after the first attempt.
        :param max_retry_time: seconds one request may spend retrying.
        :param allow_insecure_http: allow ``http://`` to a non-loopback host (a warning is logged).
        :param normalize_phones: put phone numbers in the ``84…`` form before sending them.
        :param timezone: IANA zone for naive datetimes in filters (else they are refused).
        :param platform_filter_zone: the IANA zone whose wall clock the platform reads the date filters
            in, whatever offset they carry: filters are then written in that zone, with its offset
            (which a platform that honours offsets reads the same way). No extra cost.
        :param platform_shown_zone: the IANA zone the platform writes its times in although it labels
            them ``Z``: every time read is rewritten to true UTC. No extra cost.
        :param date_filters_on_client: send no date filters and keep the window by ``created_at`` on
            this side, for a platform whose date filters apply to another field (``updated_at``).
            Cost: each listing reads the whole history newer than its window.
        :raises EtelecomConfigError: saying what is wrong and how to fix it.
        """
        if api_key is None or not str(api_key).strip():
            raise EtelecomConfigError(
                "The eTelecom connection has no API key: put the shop's api_key (or, for a partner, the "
                "shop's shop_key) in the connection's 'API key' (password) field."
            )
        kind = (account_type or "").strip().lower() or None
        if kind is not None and kind not in ACCOUNT_TYPES:
            raise EtelecomConfigError(f"Account type {account_type!r} is not valid; use 'shop' or 'partner'.")
        url, path_kind, completed = _api_base_url((base_url or "").strip(), kind)
        if kind is not None and kind != path_kind:
            raise EtelecomConfigError(
                f"Base URL {url!r} is a {path_kind} URL but the account type is {kind!r}: use the path "
                f"/v1/{kind}, or set the account type to {path_kind!r}."
            )
        parts = urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            if not allow_insecure_http:
                raise EtelecomConfigError(
                    f"Base URL {url!r} uses plain http:// to a non-loopback host, which would send the API "
                    f"key unencrypted; use https://, or set allow_insecure_http=true in the connection's "
                    f"extra if you really mean it."
                )
            log.warning("eTelecom base URL %s uses plain http://: the API key travels unencrypted.", url)
        read_timeout = 60.0 if timeout is None else timeout
        retries = 5 if max_retries is None else max_retries
        retry_time = 300.0 if max_retry_time is None else max_retry_time
        validate_number("timeout", read_timeout, whole=False, minimum=0.001, why="seconds", error=EtelecomConfigError)
        validate_number("max_retries", retries, minimum=0, why="a count of retries", error=EtelecomConfigError)
        validate_number("max_retry_time", retry_time, whole=False, minimum=0, why="seconds", error=EtelecomConfigError)
        if completed and url not in _COMPLETED_BASE_URLS:
            _COMPLETED_BASE_URLS.add(url)
            log.info(
                "eTelecom Base URL %r has no account path; calling %s (the %s path).",
                (base_url or "").strip(),
                url,
                path_kind,
            )
        return cls(
            base_url=url,
            api_key=str(api_key).strip(),
            account_type=path_kind,
            timeout=float(read_timeout),
            connect_timeout=min(10.0, float(read_timeout)),
            retry=RetryPolicy(max_retries=retries, max_retry_time=float(retry_time)),
            normalize_phones=normalize_phones,
            timezone=timezone,
            filter_zone=_zone("platform_filter_zone", platform_filter_zone),
            shown_zone=_zone("platform_shown_zone", platform_shown_zone),
            client_date_filters=bool(date_filters_on_client),
        )


def _zone(name: str, value: str | None) -> ZoneInfo | None:
    if value in (None, ""):
        return None
    try:
        return validate_timezone(value)
    except EtelecomValidationError:
        raise EtelecomConfigError(
            f"The connection's {name!r} is {value!r}, which is not an IANA time zone such as 'Asia/Ho_Chi_Minh'."
        ) from None


def _port(value: Any) -> int | None:
    """Read the connection's port field (an int from the form, maybe a string from JSON).

    0 means no port: Airflow 3.3's UI sends 0 for the hidden port field.
    """
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        number = -1
    if number == 0:
        return None
    if not 0 < number < 65536:
        raise EtelecomConfigError(
            f"The connection's port is {value!r}; it must be a whole number from 1 to 65535, or empty or 0 "
            f"(the scheme's default, 443 for https)."
        )
    return number


def base_url_from_fields(host: str | None, schema: str | None, port: Any) -> tuple[str, bool]:
    """Return the Base URL a connection's host, schema and port fields describe.

    The form's Base URL (host) normally holds the whole URL. A connection given as fields, such as
    ``{"host": "api.etelecom.vn", "schema": "https", "port": 443}`` or the URI form, cannot carry
    a path: the scheme comes from ``schema``, the port is put after the host, and the client adds
    the account type's path (see :meth:`ClientConfig.build`). Fields that contradict each other are
    refused rather than one of them silently ignored.

    :return: ``(base URL, whether it was made of several fields)``.
    :raises EtelecomConfigError: naming the field to fix.
    """
    url = (host or "").strip()
    if "@" in url.split("://", 1)[-1].partition("/")[0]:
        # Never echo the host: its user-info part may hold a secret.
        raise EtelecomConfigError(
            "The connection's Base URL (host) must not carry a user name or password ('user:secret@host'): "
            "remove them; the key goes in the connection's 'API key' (password) field."
        )
    scheme = (schema or "").strip().lower()
    port_number = _port(port)
    if not url:
        if scheme or port_number is not None:
            field_set = f"schema is {schema!r}" if scheme else f"port is {port_number}"
            raise EtelecomConfigError(
                f"The connection's Base URL (host) is empty but its {field_set}: put the full URL, such as "
                f"'https://api.etelecom.vn', in Base URL, or clear the schema and port (empty Base URL means "
                f"the default for the account type)."
            )
        return "", False
    if "://" in url:
        url_scheme = url.split("://", 1)[0].lower()
        if scheme and scheme != url_scheme:
            raise EtelecomConfigError(
                f"The connection's schema is {schema!r} but its Base URL (host) {url!r} starts with "
                f"{url_scheme}://: clear the schema (the Base URL's scheme is used) or make the two agree."
            )
        if port_number is None:
            return url, False
        rest = url.split("://", 1)[1]
    elif scheme in ("http", "https"):
        url_scheme, rest = scheme, url
    else:
        schema_is = f"schema is {schema!r}, neither 'https' nor 'http'" if scheme else "schema is empty"
        raise EtelecomConfigError(
            f"The connection's Base URL (host) {url!r} has no scheme and the connection's {schema_is}: write "
            f"Base URL as 'https://{url}', or set the schema to 'https' ('http' only for a loopback host). In "
            f"Airflow's URI form the path lands in schema: put the whole URL in the host instead."
        )
    netloc, slash, path = rest.partition("/")
    if port_number is not None:
        try:
            own_port = urlsplit(f"//{netloc}").port
        except ValueError:
            own_port = None  # an invalid port in the host is reported by ClientConfig.build
        if own_port is not None and own_port != port_number:
            raise EtelecomConfigError(
                f"The connection's port is {port_number} but its Base URL (host) {url!r} names port "
                f"{own_port}: clear the port field or make the two agree."
            )
        if own_port is None:
            netloc = f"{netloc}:{port_number}"
    return f"{url_scheme}://{netloc}{slash}{path}", True
