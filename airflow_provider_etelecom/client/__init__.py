"""The eTelecom API client layer: HTTP, retries, error mapping and paging, with no Airflow import."""

from airflow_provider_etelecom.client.client import ClientStats, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.config import ClientConfig
from airflow_provider_etelecom.client.models import (
    CallType,
    Consent,
    ConsentCheck,
    ConsentPage,
    ConsentState,
    ReasonCode,
    classify_consent,
)
from airflow_provider_etelecom.client.query import (
    ConsentFilters,
    ConsentListing,
    ConsentQuery,
    ConsentRequest,
)
from airflow_provider_etelecom.client.validation import mask_phone

__all__ = [
    "CallType",
    "ClientConfig",
    "ClientStats",
    "Consent",
    "ConsentCheck",
    "ConsentFilters",
    "ConsentListing",
    "ConsentPage",
    "ConsentQuery",
    "ConsentRequest",
    "ConsentState",
    "EtelecomClient",
    "RateLimitGate",
    "ReasonCode",
    "classify_consent",
    "mask_phone",
]
