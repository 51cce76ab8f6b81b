"""OpenLineage datasets for an export of consents: the eTelecom listing in, the final file or table out.

Both listing operators report them through :class:`ListingLineageMixin`. OpenLineage is imported
only when they are built (which only the OpenLineage provider asks for), so the provider works
without it. The names follow OpenLineage's
naming spec for storage (``file`` + absolute path, ``s3://bucket`` + key, ``gs://bucket`` + key)
and SQL tables (PostgreSQL: ``postgres://host:port`` + ``database.schema.table``, as the
OpenLineage provider's common.sql code names them; SQLite, which the spec does not list:
``sqlite://<absolute path of the database file>`` + the table), and, for the API, this
provider's convention (docs/operator.md, *Lineage*):

- namespace: the connection's Base URL (``https://api.etelecom.vn/v1/shop``), credentials and
  query stripped: one per platform and account type;
- name: ``Zalo/ListRequestConsent?connection=<etelecom_conn_id>``. Every partner's shops share one
  Base URL, so the method alone would merge every shop into one dataset. The shop is named by the
  Airflow connection that holds its key (one connection per shop key), because that is known
  without a request and is not secret; the key, or any part of it, is never used.

Every schema facet is derived from :data:`~airflow_provider_etelecom.client.models.CONSENT_FIELDS`:
the listing's and a JSON Lines file's with JSON types, a Parquet file's with Arrow types (plus its
``_extra`` column), a table's with the SQL types its caller passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_etelecom.client.models import CONSENT_FIELDS, FieldKind

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet, SchemaDatasetFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

log = logging.getLogger(__name__)

__all__ = [
    "ListingLineageMixin",
    "SqlLoadOutcome",
    "build_sql_lineage",
    "postgres_dataset_naming",
    "sqlite_dataset_naming",
]

LISTING_METHOD = "Zalo/ListRequestConsent"
#: Namespace used when the connection cannot be read (the task failed on it): still ours, never a temp file.
UNKNOWN_NAMESPACE = "etelecom"

#: Each kind's type in the API's JSON (the listing, a JSON Lines file).
_JSON_TYPES: dict[FieldKind, str] = {
    "id": "string",
    "text": "string",
    "enum": "string",
    "bool": "bool",
    "int": "integer",
    "time": "string (RFC 3339 time)",
}
#: Each kind's type in a Parquet file, as pyarrow spells it. Spelled here rather than read from the
#: writer's schema, which needs pyarrow: lineage is reported even where pyarrow is missing (a
#: failed task). A test keeps the two equal.
_ARROW_TYPES: dict[FieldKind, str] = {
    "id": "string",
    "text": "string",
    "enum": "string",
    "bool": "bool",
    "int": "int64",
    "time": "timestamp[us, tz=UTC]",
}
#: The column a Parquet file has after the fields (the writer's ``EXTRA_COLUMN``; the same test).
_EXTRA_COLUMN = "_extra"
_DESCRIPTIONS = {
    **{field.name: field.description for field in CONSENT_FIELDS},
    _EXTRA_COLUMN: "fields the schema does not know, and values that did not fit",
}


@dataclass
class ExportOutcome:
    """What an export wrote: known only once the file is in place."""

    count: int
    size_bytes: int | None
    overwritten: bool


@dataclass
class SqlLoadOutcome:
    """What a load into a SQL table did: known only once the merge committed."""

    written: int
    created: bool


Outcome = TypeVar("Outcome", ExportOutcome, SqlLoadOutcome)


class ListingLineageMixin(Generic[Outcome]):
    """Give a task that lists consents and publishes them the OpenLineage provider's three methods.

    Each reports the listing in and the task's output, as the task's :meth:`_lineage` builds them.
    They are declared for the start too, so that no event of the task falls back to the hook-level
    lineage collector, which sees only what the task writes on the way (an export's temporary
    sibling ``<path>.tmp-<uuid>``, a load's staging table). ``execute`` sets ``_lineage_base_url``
    once it has a client and ``_lineage_outcome`` once its output is published.
    """

    _lineage_base_url: str | None = None
    _lineage_outcome: Outcome | None = None

    if TYPE_CHECKING:

        @property
        def hook(self) -> EtelecomHook:
            """The task's hook (a ``cached_property`` of the task)."""

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Dataset, RunFacet]:
        """Report the listing in and the output, with its schema only (nothing is published yet)."""
        return self._lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Dataset, RunFacet]:
        """Report the listing in and the output with its schema and what was published (rows, size, creation)."""
        return self._lineage(self._lineage_outcome)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Dataset, RunFacet]:
        """Report the listing in and the intended output (schema only: a failed task publishes nothing)."""
        return self._lineage(None)

    def _lineage(self, outcome: Outcome | None) -> OperatorLineage[Dataset, RunFacet]:
        """Build the task's lineage; ``outcome`` is ``None`` until the output is published."""
        raise NotImplementedError

    def _listing_base_url(self) -> str | None:
        """Return the Base URL the task lists from, for its input dataset.

        The one ``execute`` saw, else the hook's connection's, else ``None``: the OpenLineage
        provider falls back to hook-level lineage only when an operator reports no dataset at all,
        so the listing is named even when the connection cannot be read.
        """
        if self._lineage_base_url is not None:
            return self._lineage_base_url
        try:
            return str(self.hook.client.config.base_url)
        except Exception as error:  # a broken connection already failed the task; lineage still names the input
            log.debug("The listing's Base URL is unknown for lineage: %s", error)
            return None


def listing_namespace(base_url: str | None) -> str:
    """The listing's namespace: the Base URL without credentials, query or trailing slash."""
    if not base_url:
        return UNKNOWN_NAMESPACE
    parts = urlsplit(base_url.strip())
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme.lower(), host.lower(), parts.path.rstrip("/"), "", ""))


def listing_dataset_name(etelecom_conn_id: str) -> str:
    """The listing's dataset name: the method and the connection that names the shop."""
    return f"{LISTING_METHOD}?connection={etelecom_conn_id}"


def storage_dataset_naming(path: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a storage URL, per OpenLineage's naming spec.

    ``file:///data/c.jsonl`` -> ``("file", "/data/c.jsonl")``; ``s3://bucket/k/c.parquet`` ->
    ``("s3://bucket", "k/c.parquet")``; ``gs://`` likewise; other schemes ``scheme://host`` + key.
    An Airflow connection id written into the URL (``s3://aws_conn@bucket/key``) is dropped.
    """
    parts = urlsplit(path.strip())
    scheme = parts.scheme.lower()
    host = parts.netloc.rsplit("@", 1)[-1]
    if scheme in ("file", "local", ""):
        return "file", (f"/{host}" if host and host != "localhost" else "") + parts.path
    if scheme in ("s3a", "s3n"):
        scheme = "s3"
    if scheme == "gcs":
        scheme = "gs"
    return f"{scheme}://{host}", parts.path.lstrip("/")


def _field_types(types: dict[FieldKind, str]) -> dict[str, str]:
    """Each consent field's type in one format (``types``: the format's type of each kind), in field order."""
    return {field.name: types[field.kind] for field in CONSENT_FIELDS}


def _schema_facet(column_types: dict[str, str]) -> SchemaDatasetFacet:
    """A schema facet of these columns (name -> type, in order), described from the consent's fields."""
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    return SchemaDatasetFacet(
        fields=[
            SchemaDatasetFacetFields(name=name, type=kind, description=_DESCRIPTIONS.get(name))
            for name, kind in column_types.items()
        ]
    )


def build_operator_lineage(
    *,
    base_url: str | None,
    etelecom_conn_id: str,
    output_path: str | None,
    parquet: bool,
    outcome: ExportOutcome | None,
) -> OperatorLineage[Dataset, RunFacet]:
    """Build the task's lineage: the listing as input, the final file (if any) as output.

    :param base_url: the connection's Base URL (``None`` if it could not be read).
    :param etelecom_conn_id: the eTelecom connection (names the shop).
    :param output_path: the rendered final path; ``None`` for an export to XCom (no output).
    :param parquet: whether the output is Parquet (its schema facet has Parquet types).
    :param outcome: the finished export's figures; ``None`` for a start or a failed run, whose
        output carries its schema but neither statistics nor a lifecycle change.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        LifecycleStateChange,
        LifecycleStateChangeDatasetFacet,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    json_types = _field_types(_JSON_TYPES)
    inputs: list[Dataset] = [
        InputDataset(
            namespace=listing_namespace(base_url),
            name=listing_dataset_name(etelecom_conn_id),
            facets={"schema": _schema_facet(json_types)},
        )
    ]
    outputs: list[Dataset] = []
    if output_path is not None:
        namespace, name = storage_dataset_naming(output_path)
        file_types = {**_field_types(_ARROW_TYPES), _EXTRA_COLUMN: "string (JSON)"} if parquet else json_types
        facets: dict[str, Any] = {"schema": _schema_facet(file_types)}
        output_facets: dict[str, Any] = {}
        if outcome is not None:
            change = LifecycleStateChange.OVERWRITE if outcome.overwritten else LifecycleStateChange.CREATE
            facets["lifecycleStateChange"] = LifecycleStateChangeDatasetFacet(lifecycleStateChange=change)
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=outcome.count, size=outcome.size_bytes
            )
        outputs.append(OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets))
    return OperatorLineage(inputs=inputs, outputs=outputs)


def postgres_dataset_naming(authority: str, database: str, schema: str, table: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a PostgreSQL table: ``postgres://host:port``, ``db.schema.table``."""
    return f"postgres://{authority}", f"{database}.{schema}.{table}"


def sqlite_dataset_naming(path: str, table: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a SQLite table: ``sqlite://<absolute file path>``, the table."""
    import os

    return f"sqlite://{os.path.abspath(path)}", table


def build_sql_lineage(
    *,
    base_url: str | None,
    etelecom_conn_id: str,
    namespace: str,
    name: str,
    column_types: dict[str, str],
    outcome: SqlLoadOutcome | None,
) -> OperatorLineage[Dataset, RunFacet]:
    """Build a SQL load's lineage: the listing in (as for an export), the table out.

    The table's facets: its columns with their SQL types; once the merge committed, the rows it
    inserted or changed as ``outputStatistics.rowCount``, and ``lifecycleStateChange`` ``CREATE``
    only when this load created the table. An upsert into an existing table replaces neither the
    table nor its other rows, so it reports no lifecycle change (``OVERWRITE`` would tell a
    catalog the table's earlier content is gone).

    :param column_types: column name -> SQL type, in the table's column order.
    :param outcome: ``None`` for a start or a failed run (the table unchanged: schema only).
    """
    from airflow.providers.common.compat.openlineage.facet import (
        LifecycleStateChange,
        LifecycleStateChangeDatasetFacet,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )

    facets: dict[str, Any] = {"schema": _schema_facet(column_types)}
    output_facets: dict[str, Any] = {}
    if outcome is not None:
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=outcome.written)
        if outcome.created:
            facets["lifecycleStateChange"] = LifecycleStateChangeDatasetFacet(
                lifecycleStateChange=LifecycleStateChange.CREATE
            )
    lineage = build_operator_lineage(
        base_url=base_url, etelecom_conn_id=etelecom_conn_id, output_path=None, parquet=False, outcome=None
    )
    lineage.outputs = [OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets)]
    return lineage
