"""The eTelecom API client layer: HTTP, retries, error mapping and paging, with no Airflow import."""

from airflow_provider_etelecom.client.client import ClientStats, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.config import DEFAULT_BASE_URLS, ClientConfig, RetryPolicy
from airflow_provider_etelecom.client.models import (
    CallType,
    Consent,
    ConsentCheck,
    ConsentPage,
    ConsentState,
    ReasonCode,
    ReplyStatus,
    SendStatus,
    classify_consent,
)
from airflow_provider_etelecom.client.query import (
    ConsentFilters,
    ConsentListing,
    ConsentPaging,
    ConsentQuery,
    ConsentRequest,
    ConsentRequestArguments,
)
from airflow_provider_etelecom.client.validation import mask_phone, normalize_phone

__all__ = [
    "DEFAULT_BASE_URLS",
    "CallType",
    "ClientConfig",
    "ClientStats",
    "Consent",
    "ConsentCheck",
    "ConsentFilters",
    "ConsentListing",
    "ConsentPage",
    "ConsentPaging",
    "ConsentQuery",
    "ConsentRequest",
    "ConsentRequestArguments",
    "ConsentState",
    "EtelecomClient",
    "RateLimitGate",
    "ReasonCode",
    "ReplyStatus",
    "RetryPolicy",
    "SendStatus",
    "classify_consent",
    "mask_phone",
    "normalize_phone",
]
