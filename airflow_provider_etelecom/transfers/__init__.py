"""Transfers of eTelecom consents into other systems: :class:`ConsentsToSqlOperator` (PostgreSQL, SQLite)."""

from __future__ import annotations

from airflow_provider_etelecom.transfers.consents_to_sql import ConsentsToSqlOperator

__all__ = ["ConsentsToSqlOperator"]
