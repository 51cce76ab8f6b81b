"""Turn findings into what a user reads: one entry per behaviour, and the connection extra to paste.

Plain text, no colour, stable line prefixes (``<behaviour>: ``, ``  -> ``) so a script can grep it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from airflow_provider_etelecom.contract.detectors import Finding

EXTRA_HEADING = "Connection extra to add"


def suggested_extra(findings: Sequence[Finding], current: Mapping[str, object] | None = None) -> dict[str, object]:
    """Return the settings the findings ask for, less those ``current`` already holds with the same value."""
    current = current or {}
    wanted: dict[str, object] = {}
    for finding in findings:
        wanted.update(finding.settings)
    return {name: value for name, value in wanted.items() if current.get(name) != value}


def unneeded_settings(findings: Sequence[Finding], current: Mapping[str, object]) -> list[str]:
    """Say which of the connection's settings the findings show to be wrong or needlessly costly."""
    verdicts = {finding.behaviour: finding.verdict for finding in findings}
    notes = []
    if current.get("platform_shown_zone") and verdicts.get("shown_zone") == "utc":
        notes.append(
            "remove platform_shown_zone: answers show true UTC, so the setting shifts every time the provider reads"
        )
    if current.get("date_filters_on_client") and verdicts.get("filter_field") == "created_at":
        notes.append(
            "remove date_filters_on_client: the platform's date filters bound created_at, and the setting makes each "
            "listing read the whole history newer than its window"
        )
    if current.get("platform_filter_zone") and verdicts.get("filter_zone") == "honours_offset":
        notes.append(
            "platform_filter_zone may stay: the platform honours the offset the filters are written with (no effect)"
        )
    return notes


def current_settings(filter_zone: object, shown_zone: object, client_date_filters: bool) -> dict[str, object]:
    """Return a connection's platform settings by their extra names (from a ``ClientConfig``'s fields)."""
    settings: dict[str, object] = {}
    if filter_zone is not None:
        settings["platform_filter_zone"] = str(filter_zone)
    if shown_zone is not None:
        settings["platform_shown_zone"] = str(shown_zone)
    if client_date_filters:
        settings["date_filters_on_client"] = True
    return settings


def render(
    findings: Sequence[Finding],
    *,
    target: str,
    account: str,
    requests: int,
    consent_requests: int,
    current: Mapping[str, object] | None = None,
) -> str:
    """Return the report: a heading, one entry per finding, and the connection extra to add.

    :param target: what was checked (``https://api.etelecom.vn/v1/shop (connection 'etelecom_default')``).
    :param account: the account's name, from ``Misc/CurrentAccount``.
    :param requests: requests sent in all; ``consent_requests`` of them ``RequestConsent``.
    :param current: the connection's platform settings (``--conn-id``), by extra name.
    """
    lines = [
        f"eTelecom platform check of {target}",
        f"account: {account}; {requests} requests sent, {consent_requests} of them RequestConsent",
        "",
    ]
    for finding in findings:
        mark = " (differs from the simulator's defaults)" if finding.differs else ""
        lines.append(f"{finding.behaviour}{mark}: {finding.found}")
        lines.append(f"  -> {finding.action}")
    current = dict(current or {})
    extra = suggested_extra(findings, current)
    lines.append("")
    for name, value in current.items():
        if any(name in finding.settings and finding.settings[name] == value for finding in findings):
            lines.append(f"already set: {name}: {json.dumps(value)}")
    lines.extend(unneeded_settings(findings, current))
    if extra:
        lines.append(f"{EXTRA_HEADING} (merge these keys into the connection's extra JSON):")
    else:
        lines.append(f"{EXTRA_HEADING}: none; the provider handles everything found as it is.")
    lines.append(json.dumps(extra, sort_keys=True))
    return "\n".join(lines) + "\n"
