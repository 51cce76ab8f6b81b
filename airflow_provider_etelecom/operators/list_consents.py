"""Export eTelecom consents to XCom (small results) or, streamed, to object storage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.common.compat.sdk import Asset, BaseOperator, Context

from airflow_provider_etelecom.client import (
    ClientStats,
    Consent,
    ConsentPage,
    ConsentQuery,
)
from airflow_provider_etelecom.client.parallel import MAX_PARALLEL_WINDOWS, ParallelStats
from airflow_provider_etelecom.client.query import FILTER_FIELDS
from airflow_provider_etelecom.client.validation import MAX_PAGE_SIZE, format_api_time, validate_number
from airflow_provider_etelecom.exceptions import EtelecomValidationError
from airflow_provider_etelecom.failure_policy import validate_retry_permanent_errors, with_failure_policy
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.operators.base import (
    ConsentFiltersMixin,
    StopOnKillMixin,
    with_listing_params,
)
from airflow_provider_etelecom.operators.base import is_template as _is_template
from airflow_provider_etelecom.operators.lineage import ExportOutcome, ListingLineageMixin, build_operator_lineage
from airflow_provider_etelecom.outputs.files import AtomicOutput, resolve_output_path
from airflow_provider_etelecom.outputs.jsonl import atomic_jsonl_writer
from airflow_provider_etelecom.outputs.parquet import (
    ParquetUnavailableError,
    atomic_parquet_writer,
    is_parquet_path,
    pyarrow_installed,
    pyarrow_missing_message,
    require_pyarrow,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = ["ListConsentsOperator"]

PROGRESS_EVERY_S = 10.0
PROGRESS_EVERY_PAGES = 100


def _check_output_path_shape(value: object) -> None:
    """Refuse at parse time what can never be a storage URL (the filesystem is resolved in execute)."""
    if not isinstance(value, str) or "://" not in value or value.rstrip().endswith("/"):
        raise EtelecomValidationError(
            f"output_path={value!r} must be a file URL with a scheme, such as "
            f"'file:///data/etelecom/consents.jsonl' or 's3://bucket/consents/{{{{ ds }}}}.jsonl.gz'.",
            parameter="output_path",
        )


class _Progress:
    """Log a progress line every ``PROGRESS_EVERY_S`` seconds or ``PROGRESS_EVERY_PAGES`` pages."""

    def __init__(self, operator: BaseOperator) -> None:
        self._log = operator.log
        self.started = time.monotonic()
        self._last_at = self.started
        self._last_pages = 0
        self.pages = 0
        self.consents = 0

    def page(self, consents: int) -> None:
        self.pages += 1
        self.consents += consents
        now = time.monotonic()
        if now - self._last_at >= PROGRESS_EVERY_S or self.pages - self._last_pages >= PROGRESS_EVERY_PAGES:
            self._last_at, self._last_pages = now, self.pages
            self._log.info(
                "Progress: %d pages, %d consents, %.0f consents/s.", self.pages, self.consents, self.rate(now)
            )

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self.started
        return self.consents / elapsed if elapsed > 0 else 0.0


class _ConsentWriter(Protocol):
    """What both writers offer the operator: add records, count them."""

    count: int
    output: AtomicOutput | None

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> int: ...


def _open_writer(
    output_path: str, conn_id: str | None, stop: threading.Event
) -> AbstractContextManager[_ConsentWriter]:
    """The one place that picks the format: ``.parquet`` is Parquet, anything else JSON Lines."""
    if is_parquet_path(output_path):
        return atomic_parquet_writer(output_path, conn_id=conn_id, stop=stop)
    return atomic_jsonl_writer(output_path, conn_id=conn_id, stop=stop)


class ListConsentsOperator(ConsentFiltersMixin, StopOnKillMixin, ListingLineageMixin[ExportOutcome], BaseOperator):
    """Export every consent matching the filters, to XCom or streamed as JSON Lines to object storage.

    With ``output_path=None`` the consents are returned (pushed to XCom): fine for a few thousand,
    guarded by ``max_xcom_consents`` because XCom lives in Airflow's metadata database. With
    ``output_path`` (``file://``, ``s3://``, ``gs://``, ... any scheme Airflow's
    ``ObjectStoragePath`` knows) they are streamed one page at a time, one consent per line exactly
    as the API returned it, gzip-compressed when the path ends in ``.gz``; a path ending in
    ``.parquet`` gets typed Apache Parquet instead (zstd, in row groups; needs the ``parquet`` extra,
    see :mod:`airflow_provider_etelecom.outputs.parquet`). Either way the file appears only
    when the export is complete (temporary sibling, then move), so a failed try leaves an earlier
    file untouched and a retry or re-run replaces it with a complete one. Only
    ``{path, count, pages, window}`` goes to XCom.

    Paging, retries and ``Retry-After`` are the client's: a fault on page 400 is retried on page
    400, over the same keep-alive connection.

    Filters and ``output_path`` are templated: ``date_from="{{ data_interval_start }}"`` and
    ``date_to="{{ data_interval_end }}"`` give an incremental load; the window is half-open, so
    consecutive runs never export a consent twice. Values without Jinja are validated when the DAG
    is parsed; rendered values are validated at the start of ``execute``, before any request.

    When the task has ``outlets``, each asset event's ``extra`` is ``{path, count, window}``. With
    the OpenLineage provider installed, the task reports its own lineage (the listing in, the final
    file out, see :mod:`airflow_provider_etelecom.operators.lineage`), never the temporary file.

    Failures a retry cannot fix (invalid arguments, a wrong connection, a refused key after one
    re-read of the connection, a missing bucket, a read-only path) fail the task without Airflow retries;
    storage that refuses its credentials gets one retry; transient failures are retried as the
    task says (see :mod:`airflow_provider_etelecom.failure_policy`). A stopped task
    (``on_kill``: SIGTERM, a task marked failed) stops paging, deletes its temporary file and
    publishes nothing.

    The filters and paging arguments (``call_type`` ... ``max_pages``, listed last) are those of
    :class:`~airflow_provider_etelecom.client.ConsentFilters` and
    :class:`~airflow_provider_etelecom.client.ConsentPaging`.

    :param etelecom_conn_id: the eTelecom connection.
    :param timezone: IANA zone for naive ``date_from``/``date_to`` (else they are refused).
    :param output_path: where to write JSON Lines (Parquet if it ends in ``.parquet``); ``None``
        returns the consents to XCom.
    :param output_conn_id: Airflow connection with the credentials of ``output_path``'s storage.
    :param max_xcom_consents: in XCom mode, fail (without paging further) once more consents than
        this are found. 10,000 consents are about 5 MB of JSON in one XCom row.
    :param max_parallel_windows: split ``[date_from, date_to)`` (both required) into windows and
        page this many at once within the task, each on its own connection, into the same output;
        off by default. Lifts the sequential floor (pages x round trip) of one big range; to spread
        a backfill over workers, map the operator over ``split_windows`` instead. Consents then
        arrive in no particular order; memory stays bounded (a few pages per window in flight).
    :param retry_permanent_errors: let Airflow retry failures a retry cannot fix (off by default).
    :param verify: prove the export complete before publishing it: list the window again in the
        other order and fail (nothing published) if that finds a consent the export did not write.
        The only way to catch a platform whose cursor skips rows when consents are deleted while the
        export pages (an offset cursor). Cost: a second listing (about as many requests again) and
        8 bytes per exported consent. Needs ``max_pages=None``.
    """

    stopped_work = "export"
    template_fields: Sequence[str] = (*FILTER_FIELDS, "output_path")
    ui_color = "#d9f0ff"

    def __init__(
        self,
        *,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        call_type: str | None = None,
        date_from: datetime | str | None = None,
        date_to: datetime | str | None = None,
        is_charged: bool | str | None = None,
        oa_id: int | str | None = None,
        phone: str | None = None,
        reason_code: str | None = None,
        reply_status: str | None = None,
        status: str | None = None,
        user_id: int | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        sort: str | None = None,
        max_pages: int | None = None,
        timezone: str | None = None,
        output_path: str | None = None,
        output_conn_id: str | None = None,
        max_xcom_consents: int = 10_000,
        max_parallel_windows: int | None = None,
        retry_permanent_errors: bool = False,
        verify: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.etelecom_conn_id = etelecom_conn_id
        self.call_type = call_type
        self.date_from = date_from
        self.date_to = date_to
        self.is_charged = is_charged
        self.oa_id = oa_id
        self.phone = phone
        self.reason_code = reason_code
        self.reply_status = reply_status
        self.status = status
        self.user_id = user_id
        self.page_size = page_size
        self.sort = sort
        self.max_pages = max_pages
        self.timezone = timezone
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.max_xcom_consents = validate_number(
            "max_xcom_consents", max_xcom_consents, minimum=0, why="0 forbids returning consents to XCom"
        )
        self.max_parallel_windows = validate_number(
            "max_parallel_windows",
            max_parallel_windows,
            minimum=1,
            maximum=MAX_PARALLEL_WINDOWS,
            optional=True,
            why="None lists sequentially; more threads than that only draw rate limits from one API key",
        )
        self.retry_permanent_errors = validate_retry_permanent_errors(retry_permanent_errors)
        self.verify = self._check_verify(verify)
        self._check_listing()  # what is known now; templated values are validated once rendered
        if output_path is not None and not _is_template(output_path):
            _check_output_path_shape(output_path)
            if is_parquet_path(output_path) and not pyarrow_installed():
                raise EtelecomValidationError(pyarrow_missing_message(path=output_path), parameter="output_path")

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id`` (built on first use, never in ``__init__``)."""
        return EtelecomHook(etelecom_conn_id=self.etelecom_conn_id, timezone=self.timezone)

    @with_failure_policy
    def execute(self, context: Context) -> Any:
        """Validate the rendered arguments, then export; return the consents or the file's metadata.

        :raises AirflowFailException: for failures a retry cannot fix: invalid rendered arguments,
            an unusable ``output_path`` or connection, a refused key, more consents than
            ``max_xcom_consents`` in XCom mode.
        :raises EtelecomError: for failures that may pass (API failures that outlast the
            connection's retry budget, a storage outage).
        :raises EtelecomStoppedError: when told to stop (``on_kill``) before the export finished.
        """
        self._arm_stop()
        self._lineage_outcome = None
        query = self._listing_query(self.hook)
        if (
            self.max_parallel_windows
            and self.max_parallel_windows > 1
            and (query.date_from is None or query.date_to is None)
        ):
            raise EtelecomValidationError(
                f"max_parallel_windows={self.max_parallel_windows} needs both date_from and date_to, because "
                f"the range is split into windows.",
                parameter="max_parallel_windows",
            )
        if self.output_path is not None:
            try:
                resolve_output_path(self.output_path, conn_id=self.output_conn_id)
                if is_parquet_path(self.output_path):
                    require_pyarrow(path=self.output_path)
            except (ValueError, ParquetUnavailableError) as error:
                raise EtelecomValidationError(str(error), parameter="output_path") from error
        window = {
            "date_from": None if query.date_from is None else format_api_time(query.date_from),
            "date_to": None if query.date_to is None else format_api_time(query.date_to),
        }
        self.log.info("Listing eTelecom consents (%s) to %s.", query.describe(), self.output_path or "XCom")
        client = self.hook.client
        self._lineage_base_url = client.config.base_url
        progress = _Progress(self)
        parallel = ParallelStats() if self.max_parallel_windows and self.max_parallel_windows > 1 else None
        try:
            if self.output_path is None:
                result: Any = self._export_to_xcom(query, progress, parallel)
                count = len(result)
            else:
                result = self._export_to_storage(query, progress, self.output_path, window, parallel)
                count = result["count"]
            self._log_summary(progress, count, client.stats, parallel)
        finally:
            self.hook.close()
        self._set_asset_extra(context, {"path": self.output_path, "count": count, "window": window})
        return result

    @contextmanager
    def _pages(self, query: ConsentQuery, parallel: ParallelStats | None) -> Iterator[Iterator[ConsentPage]]:
        """Open the listing, and close it on the way out: a stopped export's parallel workers stop too."""
        pages = self.hook.iter_query_pages(
            query, max_parallel_windows=self.max_parallel_windows, parallel_stats=parallel
        )
        try:
            yield pages
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                close()

    def _export_to_xcom(
        self, query: ConsentQuery, progress: _Progress, parallel: ParallelStats | None
    ) -> list[Consent]:
        consents: list[Consent] = []
        exported = self._exported()
        with self._pages(query, parallel) as pages:
            for page in pages:
                self._check_stop(f"after {progress.pages} pages; the export was abandoned and nothing was published.")
                if exported is not None:
                    exported.add_new(c["id"] for c in page["consents"])
                consents.extend(page["consents"])
                progress.page(len(page["consents"]))
                if len(consents) > self.max_xcom_consents:
                    raise EtelecomValidationError(
                        f"More than max_xcom_consents={self.max_xcom_consents} consents match ({len(consents)} "
                        f"after {progress.pages} pages, still paging), too many for XCom, which is stored in "
                        f"Airflow's metadata database. Set output_path (e.g. "
                        f"'file:///data/etelecom/{{{{ ds }}}}.jsonl' or 's3://bucket/consents/{{{{ ds }}}}.jsonl') "
                        f"to stream them to storage, or narrow the filters / date window.",
                        parameter="max_xcom_consents",
                    )
        self._verify_export(self.hook, query, exported, "the export", self.max_parallel_windows)
        return consents

    def _export_to_storage(
        self,
        query: ConsentQuery,
        progress: _Progress,
        output_path: str,
        window: dict[str, str | None],
        parallel: ParallelStats | None,
    ) -> dict[str, Any]:
        # The writer is the inner block, so a failed or stopped export deletes its temporary file
        # before the listing's parallel workers are waited for.
        exported = self._exported()
        with (
            self._pages(query, parallel) as pages,
            _open_writer(output_path, self.output_conn_id, self._stop) as writer,
        ):
            for page in pages:
                self._check_stop(f"after {progress.pages} pages; the export was abandoned and nothing was published.")
                writer.write_many(page["consents"])
                if exported is not None:
                    exported.add_new(c["id"] for c in page["consents"])
                progress.page(len(page["consents"]))
            # Before the writer publishes: an export found incomplete leaves no file.
            self._verify_export(self.hook, query, exported, f"the export to {output_path}", self.max_parallel_windows)
        output = writer.output
        self._lineage_outcome = ExportOutcome(
            writer.count, output.size if output else None, bool(output and output.existed)
        )
        return {"path": output_path, "count": writer.count, "pages": progress.pages, "window": window}

    def _lineage(self, outcome: ExportOutcome | None) -> OperatorLineage[Dataset, RunFacet]:
        """Build the lineage: the listing in, the final file out (never its temporary sibling), none for XCom."""
        output_path = self.output_path if isinstance(self.output_path, str) else None
        return build_operator_lineage(
            base_url=self._listing_base_url(),
            etelecom_conn_id=self.etelecom_conn_id,
            output_path=output_path,
            parquet=output_path is not None and is_parquet_path(output_path),
            outcome=outcome,
        )

    def _log_summary(self, progress: _Progress, count: int, stats: ClientStats, parallel: ParallelStats | None) -> None:
        elapsed = time.monotonic() - progress.started
        self.log.info(
            "Exported %d consents in %d pages to %s in %.1f s (%.0f consents/s); %d requests, %d retries, "
            "%d rate-limited answers; %.1f s spent waiting before requests, %.1f s of it for rate limits%s.",
            count,
            progress.pages,
            self.output_path or "XCom",
            elapsed,
            progress.rate(),
            stats.requests,
            stats.retries,
            stats.rate_limited,
            stats.waited_s,
            stats.rate_limit_waited_s,
            " (summed over the parallel windows, which wait at the same time)" if parallel else "",
        )
        if parallel is not None:
            self.log.info("Parallel windows: %s.", parallel.describe())
        worth_a_warning, note = stats.paging_note()
        if note:
            (self.log.warning if worth_a_warning else self.log.info)("Paging: %s.", note)

    def _set_asset_extra(self, context: Context, extra: dict[str, Any]) -> None:
        """Put ``{path, count, window}`` on the asset event of each ``Asset`` outlet."""
        outlets = [outlet for outlet in (self.outlets or []) if isinstance(outlet, Asset)]
        if not outlets:
            return
        events = context.get("outlet_events")
        if events is None:
            return
        for outlet in outlets:
            events[outlet].extra = dict(extra)


ListConsentsOperator.__doc__ = with_listing_params(ListConsentsOperator.__doc__)
