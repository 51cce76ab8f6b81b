"""Apache Airflow provider for the eTelecom Zalo Cloud call-consent API.

This module is imported by Airflow's providers manager on every start-up, so it stays
import-light: no Airflow import, no HTTP library, only :func:`get_provider_info`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]

#: Connection fields shown in the Airflow 3.2+ UI (declared here, not through hook methods,
#: because 3.2+ reads the form from provider info and warns about the old hook methods).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "account_type": {
        "label": "Account type",
        "description": (
            "Empty: read from the Base URL's path (/v1/shop or /v1/partner; shop when it has none). "
            "shop: your own API key on /v1/shop. partner: a shop's shop_key on /v1/partner."
        ),
        # No default: a stored "shop" is a string under 5 characters, which Airflow 3 warns it cannot
        # mask on every run that reads the connection.
        "schema": {"type": ["string", "null"], "enum": ["shop", "partner", None]},
    },
    "timeout": {
        "label": "Timeout",
        "description": "Seconds to wait for each HTTP answer (read timeout; connect timeout is 10 s at most).",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of one request after a transient failure (5xx, 429, network).",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
    "max_retry_time": {
        "label": "Max retry time",
        "description": "Seconds one request may spend retrying, Retry-After waits included.",
        "schema": {"type": ["number", "null"], "default": 300},
    },
}

#: Standard fields: relabelled, with placeholders; the ones eTelecom has no use for are hidden.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port", "extra"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {
        "host": "https://api.etelecom.vn/v1/shop (empty: the default for the account type)",
        "password": "Shop api_key, or the shop's shop_key for a partner",
        "account_type": "shop",
        "timeout": "60",
        "max_retries": "5",
        "max_retry_time": "300",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata that Airflow's providers manager reads.

    Kept valid against Airflow's ``provider_info.schema.json``: a malformed provider makes
    ``airflow providers list`` fail for every user of the deployment.

    :return: the provider-info dictionary.
    """
    return {
        "package-name": "airflow-provider-etelecom",
        "name": "eTelecom",
        "description": "eTelecom Zalo Cloud call consents: list them, request them, wait for the reply.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "eTelecom",
                "external-doc-url": "https://docs.etelecom.vn/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "eTelecom",
                "python-modules": ["airflow_provider_etelecom.hooks.etelecom"],
            }
        ],
        "operators": [
            {
                "integration-name": "eTelecom",
                "python-modules": [
                    "airflow_provider_etelecom.operators.list_consents",
                    "airflow_provider_etelecom.operators.request_consent",
                ],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "eTelecom",
                "target-integration-name": "PostgreSQL",
                "python-module": "airflow_provider_etelecom.transfers.consents_to_sql",
            },
            {
                "source-integration-name": "eTelecom",
                "target-integration-name": "SQLite",
                "python-module": "airflow_provider_etelecom.transfers.consents_to_sql",
            },
        ],
        "sensors": [
            {
                "integration-name": "eTelecom",
                "python-modules": ["airflow_provider_etelecom.sensors.consent_replies"],
            }
        ],
        "triggers": [
            {
                "integration-name": "eTelecom",
                "python-modules": [
                    "airflow_provider_etelecom.triggers.consent_replies",
                    "airflow_provider_etelecom.triggers.consent_reply_event",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "etelecom",
                "hook-class-name": "airflow_provider_etelecom.hooks.etelecom.EtelecomHook",
                "hook-name": "eTelecom",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
