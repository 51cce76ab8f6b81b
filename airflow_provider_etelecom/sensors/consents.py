"""The sensors' import path in earlier versions of the README; kept so DAGs written with it still import.

The sensors live in :mod:`airflow_provider_etelecom.sensors.consent_replies`, the one documented path.
"""

from __future__ import annotations

from airflow_provider_etelecom.sensors.consent_replies import ConsentRepliesSensor, ConsentReplySensor

__all__ = ["ConsentRepliesSensor", "ConsentReplySensor"]
