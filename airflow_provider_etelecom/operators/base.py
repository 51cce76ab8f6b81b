"""What every consent-listing operator shares: its listing arguments, its stop on kill, its proof.

:class:`~airflow_provider_etelecom.operators.list_consents.ListConsentsOperator` and
:class:`~airflow_provider_etelecom.transfers.consents_to_sql.ConsentsToSqlOperator` both build on
this module (the transfer imports it as the operators' layer's public base).

**The listing arguments.** Both take the
filters of :class:`~airflow_provider_etelecom.client.ConsentFilters` and the paging arguments of
:class:`~airflow_provider_etelecom.client.ConsentPaging` as explicit ``__init__`` parameters
(Airflow checks the keys of ``partial().expand_kwargs()`` against them) and store them as
attributes; :class:`ConsentFiltersMixin` validates those attributes once each: the literal ones
when the DAG is parsed, and at run time only the ones rendering changed.

**Stopping when Airflow kills the task** (:class:`StopOnKillMixin`). Airflow calls ``on_kill`` on
SIGTERM (a pod stopping, a task marked failed in the UI). On Airflow 3 ``execute`` keeps running
afterwards, so ``on_kill`` only sets a flag; the task checks it on every page and once more right
before it publishes anything (the move of an export's file, the merge of a load), and stops with
:class:`~airflow_provider_etelecom.exceptions.EtelecomStoppedError`, its temporary output discarded.
On Airflow 2 the SIGTERM handler also raises, and the same clean-up runs on the way out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from airflow_provider_etelecom.client import ConsentQuery
from airflow_provider_etelecom.client.query import LISTING_FIELDS, listing_param_docs
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.client.validation import is_unrendered, validate_bool
from airflow_provider_etelecom.client.verify import opposite_order, verify_export
from airflow_provider_etelecom.exceptions import EtelecomStoppedError, EtelecomValidationError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

__all__ = ["ConsentFiltersMixin", "StopOnKillMixin", "is_template", "with_listing_params"]


def is_template(value: object) -> bool:
    """Tell whether ``value`` still holds Jinja (so it is validated after rendering, in ``execute``)."""
    return isinstance(value, str) and "{{" in value


def is_unchanged(value: object, seen: object) -> bool:
    """Tell whether a rendered value is the one validated at parse time (same type, equal)."""
    return type(value) is type(seen) and value == seen


def with_listing_params(doc: str | None) -> str:
    """Return an operator's docstring with the ``:param:`` lines of every listing argument appended.

    The lines come from :class:`~airflow_provider_etelecom.client.ConsentFilters` and
    :class:`~airflow_provider_etelecom.client.ConsentPaging`, so they are written once for every
    operator that takes them, and ``help()`` shows them all.
    """
    return (doc or "").rstrip() + "\n" + listing_param_docs()


class ConsentFiltersMixin:
    """Validate the listing attributes (:data:`LISTING_FIELDS`) of an operator, each value once.

    Also the opt-in proof that an export is complete (``verify``), shared by every listing operator.
    """

    template_fields: Sequence[str]
    timezone: str | None
    is_charged: Any
    verify: bool
    max_pages: Any
    log: Any

    def _check_verify(self, verify: object) -> bool:
        """Validate ``verify`` (a proof of the whole window cannot follow a listing cut by ``max_pages``)."""
        if validate_bool("verify", verify) and self.max_pages is not None:
            raise EtelecomValidationError(
                f"verify=True proves the whole window exported, which max_pages={self.max_pages!r} cuts short: "
                f"drop one of them.",
                parameter="verify",
            )
        return bool(verify)

    def _exported(self) -> SeenIds | None:
        """The set the export records every written id in when ``verify`` (else ``None``: nothing kept)."""
        return SeenIds() if self.verify else None

    def _verify_export(
        self,
        hook: EtelecomHook,
        query: ConsentQuery,
        exported: SeenIds | None,
        what: str,
        max_parallel_windows: int | None = None,
    ) -> None:
        """List the window again in the other order and fail unless the export wrote every consent it finds.

        :raises EtelecomContractError: when the second listing finds consents the export missed.
        """
        if exported is None:
            return
        pages = hook.iter_query_pages(opposite_order(query), max_parallel_windows=max_parallel_windows)
        check = verify_export(pages, exported)
        self.log.info("Verified %s: %s.", what, check.describe())
        check.raise_if_incomplete(what)

    def _check_listing(self) -> None:
        """Validate the listing arguments known when the DAG is parsed (templated ones: :meth:`_listing_query`)."""
        templated = set(self.template_fields)
        seen: dict[str, Any] = {}
        for name in LISTING_FIELDS:
            value = getattr(self, name)
            if name not in templated or value is None or not is_unrendered(value):
                seen[name] = value
        self._parsed_query = ConsentQuery.build(timezone=self.timezone, **seen)
        self._parsed_values = seen

    def _listing_query(self, hook: EtelecomHook) -> ConsentQuery:
        """Return the query of the rendered arguments, validating only those rendering changed.

        :raises EtelecomValidationError: naming the first invalid rendered parameter.
        """
        changed: dict[str, Any] = {}
        for name in LISTING_FIELDS:
            value = getattr(self, name)
            if name in self._parsed_values and is_unchanged(value, self._parsed_values[name]):
                continue
            if name == "is_charged" and isinstance(value, str):
                # A literal string was refused at parse time, so a string here was rendered from Jinja.
                value = {"true": True, "false": False}.get(value.strip().lower(), value)
            changed[name] = value
        return hook.build_query(self._parsed_query, **changed)


class StopOnKillMixin:
    """Give an operator ``on_kill`` and the check its running ``execute`` makes.

    ``execute`` calls :meth:`_arm_stop` first, then :meth:`_check_stop` on every page and before
    it publishes.
    """

    task_id: str
    log: Any
    #: What the task abandons when told to stop, for the log line (``export``, ``load``).
    stopped_work = "work"
    _stop: threading.Event

    def _arm_stop(self) -> threading.Event:
        """Make this try's stop flag (a retry starts with a fresh one) and return it."""
        self._stop = threading.Event()
        return self._stop

    def on_kill(self) -> None:
        """Tell the running task to stop: it pages no further and publishes nothing."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            self.log.warning(
                "%s %s was told to stop; abandoning the %s.", type(self).__name__, self.task_id, self.stopped_work
            )
            stop.set()

    def _check_stop(self, outcome: str) -> None:
        """Raise once ``on_kill`` was called, saying what that left (``outcome``).

        :raises EtelecomStoppedError: when told to stop.
        """
        if self._stop.is_set():
            raise EtelecomStoppedError(f"{type(self).__name__} {self.task_id} was told to stop (on_kill) {outcome}")
