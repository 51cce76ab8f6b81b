"""Prove an export complete: a second listing in the other order, compared by id (opt-in).

No Airflow here. One pass cannot see every way a platform can lose a consent: an offset cursor
skips a row whenever a consent before its position is deleted while the listing pages, and no answer
shows it. A second listing of the same window, oldest first where the export read newest first (or
the other way round), meets those rows at other positions; any consent it finds that the export did
not write was lost by the export. Cost: one more listing of the window (about as many requests
again), and 8 bytes per exported id to compare with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from airflow_provider_etelecom.client.models import ConsentPage
from airflow_provider_etelecom.client.query import ConsentQuery
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.exceptions import EtelecomContractError

__all__ = ["opposite_order", "verify_export"]

_SHOWN = 10


def opposite_order(query: ConsentQuery) -> ConsentQuery:
    """Return ``query`` read in the other ``created_at`` order (newest first by default)."""
    return dataclasses.replace(query, sort="-created_at" if query.sort == "created_at" else "created_at")


@dataclass
class Verification:
    """What the second listing found, against the ids the export wrote.

    :param exported: consents the export wrote.
    :param listed: consents of the window the second listing found.
    :param missing: how many of those the export did not write.
    :param examples: the first few of them, by id.
    """

    exported: int = 0
    listed: int = 0
    missing: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def gone(self) -> int:
        """Consents the export wrote that the second listing did not find (deleted since, or missed by it)."""
        return self.exported - (self.listed - self.missing)

    def describe(self) -> str:
        """Say what was found, for the task's log."""
        gone = f"; {self.gone} written consents were not listed again (deleted since?)" if self.gone else ""
        return (
            f"a second listing in the other order found {self.listed} consents, {self.missing} of them not "
            f"exported{gone}"
        )

    def raise_if_incomplete(self, what: str) -> None:
        """Fail loudly when the second listing found consents the export missed.

        :raises EtelecomContractError: naming how many and which, with ``behaviour="incomplete_export"``.
        """
        if not self.missing:
            return
        raise EtelecomContractError(
            f"{what} is not complete: {self.describe()} (e.g. {', '.join(self.examples)}). The platform's cursor "
            f"skipped them while the export paged (an offset cursor does when consents are deleted meanwhile). "
            f"Nothing was published; retry the task, and report the behaviour to eTelecom if it repeats.",
            endpoint="Zalo/ListRequestConsent",
            behaviour="incomplete_export",
            retryable=True,
        )


def verify_export(pages: Iterable[ConsentPage], exported: SeenIds) -> Verification:
    """Compare a second listing's pages with the ids an export wrote.

    :param pages: the pages of the same window in the other order (see :func:`opposite_order`).
    :param exported: every id the export wrote.
    """
    check = Verification(exported=len(exported))
    for page in pages:
        for consent in page["consents"]:
            check.listed += 1
            if consent["id"] not in exported:
                check.missing += 1
                if len(check.examples) < _SHOWN:
                    check.examples.append(consent["id"])
    return check
