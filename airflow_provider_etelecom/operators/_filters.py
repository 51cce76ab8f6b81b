"""The listing filters that every consent-listing operator takes, read in one place.

:class:`~airflow_provider_etelecom.operators.list_consents.ListConsentsOperator` and
:class:`~airflow_provider_etelecom.transfers.consents_to_sql.ConsentsToSqlOperator` store the same
filter, paging and ``timezone`` arguments as attributes (explicit ``__init__`` parameters, which
``expand_kwargs`` needs); this mixin turns those attributes into the keyword arguments of
:meth:`~airflow_provider_etelecom.hooks.etelecom.EtelecomHook.build_query`, so both read them the
same way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FILTER_FIELDS", "ConsentFiltersMixin", "is_template"]

#: Filter keywords, in the order of :meth:`EtelecomHook.list_consents`.
FILTER_FIELDS = (
    "call_type",
    "date_from",
    "date_to",
    "is_charged",
    "oa_id",
    "phone",
    "reason_code",
    "reply_status",
    "status",
    "user_id",
)


def is_template(value: object) -> bool:
    """Tell whether ``value`` still holds Jinja (so it is validated after rendering, in ``execute``)."""
    return isinstance(value, str) and "{{" in value


class ConsentFiltersMixin:
    """Read the filter attributes (``FILTER_FIELDS``), ``page_size``, ``sort`` and ``max_pages`` of an operator."""

    is_charged: Any
    page_size: int
    sort: str | None
    max_pages: int | None

    def _query_arguments(self, *, skip_templates: bool = False) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for name in FILTER_FIELDS:
            value = getattr(self, name)
            arguments[name] = None if skip_templates and is_template(value) else value
        if not skip_templates and isinstance(self.is_charged, str):
            # A literal string was refused at parse time, so a string here was rendered from Jinja.
            arguments["is_charged"] = {"true": True, "false": False}.get(
                self.is_charged.strip().lower(), self.is_charged
            )
        return {**arguments, "page_size": self.page_size, "sort": self.sort, "max_pages": self.max_pages}
