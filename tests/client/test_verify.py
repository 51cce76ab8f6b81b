"""The opt-in proof that an export is complete: a second listing in the other order, compared by id.

An offset cursor skips a row whenever a consent before its position is deleted while the listing
pages: no answer shows it, so only a second listing can. These tests delete consents between pages
of a real listing over loopback HTTP and check what the verification finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient
from airflow_provider_etelecom.client.paging import CursorKind, PlatformFacts
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.client.verify import opposite_order, verify_export
from airflow_provider_etelecom.exceptions import EtelecomContractError
from airflow_provider_etelecom.testing import EtelecomSimulator

KEY = "verify-key-0123456789"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=10)


def export_while_deleting(sim: EtelecomSimulator, query: ConsentQuery) -> tuple[SeenIds, set[str]]:
    """List ``query`` page by page, deleting ten consents the listing already passed after page two."""
    client = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY))
    client.facts = PlatformFacts(cursor=CursorKind.KEYSET)  # follow the cursor, as a listing that learnt it
    exported, deleted = SeenIds(), set[str]()
    for number, page in enumerate(client.iter_consent_pages(query), start=1):
        exported.add_new(c["id"] for c in page["consents"])
        if number == 2:
            passed = [c["id"] for c in page["consents"][:10]]
            sim.delete_consents(passed)
            deleted.update(passed)
    return exported, deleted


@pytest.fixture(params=["keyset", "offset"])
def sim(request: pytest.FixtureRequest) -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=600, seed=5, api_key=KEY, start=START, end=END, cursor_kind=request.param) as s:
        yield s


def test_a_second_listing_finds_what_an_offset_cursor_skipped(sim: EtelecomSimulator) -> None:
    query = ConsentQuery.build(date_from=START, date_to=END)
    exported, deleted = export_while_deleting(sim, query)
    everything = {str(c["id"]) for c in sim.consents()}
    lost = everything - {i for i in everything if i in exported}
    client = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY))
    check = verify_export(client.iter_consent_pages(opposite_order(query)), exported)
    assert check.listed == len(everything) and check.exported == len(exported)
    assert check.gone == len(deleted)  # written, then deleted: reported, not a failure
    if sim.switches.cursor_kind == "keyset":
        assert lost == set() and check.missing == 0
        check.raise_if_incomplete("the export")
        return
    # The offset moved under the deleted rows: as many live consents were skipped, and found again.
    assert len(lost) == len(deleted) and check.missing == len(lost) and set(check.examples) <= lost
    with pytest.raises(EtelecomContractError, match="not complete") as caught:
        check.raise_if_incomplete("the export")
    assert caught.value.behaviour == "incomplete_export" and str(len(lost)) in caught.value.message


def test_the_other_order_of_each_sort() -> None:
    assert opposite_order(ConsentQuery()).sort == "created_at"
    assert opposite_order(ConsentQuery.build(sort="-created_at")).sort == "created_at"
    assert opposite_order(ConsentQuery.build(sort="created_at")).sort == "-created_at"
