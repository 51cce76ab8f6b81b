"""Response parsing, fuzzed: whatever a server answers, only the provider's own errors come out.

Random JSON shapes (near-misses of the documented ones and arbitrary values), random bytes, random
statuses and ``Retry-After`` headers are served over real loopback HTTP by the canned server of
``tests/client``; every public call of the hook must return or raise an ``EtelecomError`` subclass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from airflow_provider_etelecom.exceptions import EtelecomError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from tests.client.conftest import CannedServer
from tests.conftest import SECRET_KEY

CONN_ID = "etelecom_fuzz"
OA = "4239023413265392134"
PHONE = "0912345678"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["2026-01-05T03:04:05Z", "2026-01-05", "", "S", "P", "N", "NS", "1", "abc=="])
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["id", "created_at", "updated_at", "reply_status", "status", "expires_at", "phone", "oa_id"]
consents = st.lists(
    st.one_of(st.fixed_dictionaries({}, optional={name: values for name in FIELDS}), values), max_size=5
)
paging = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={"next": values, "prev": values, "limit": values, "after": values}),
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "consents": st.one_of(consents, values),
        "paging": paging,
        "code": values,
        "msg": values,
        "meta": values,
        "error": values,
        "expired_time": values,
        "message": values,
        "id": values,
        "name": values,
    },
)
bodies = st.one_of(
    shaped.map(lambda v: json.dumps(v).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
statuses = st.sampled_from([200, 200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 405, 408, 409, 429, 500, 501, 503])
retry_after = st.one_of(
    st.none(), st.sampled_from(["0", "0.01", "-5", "nan", "inf", "1e309", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"])
)


@pytest.fixture(scope="module")
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    name = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[name] = json.dumps({"conn_type": "etelecom", "host": server.base_url, "password": SECRET_KEY})
    try:
        yield server
    finally:
        os.environ.pop(name, None)
        server.close()


def _hook() -> EtelecomHook:
    # No retries, so that a fuzzed Retry-After never makes a test wait; retry paths are in tests/client.
    return EtelecomHook(CONN_ID, max_retries=0)


CALLS: dict[str, Callable[[EtelecomHook], object]] = {
    "list_consents": lambda hook: list(hook.list_consents(max_pages=3)),
    "list_consents_window": lambda hook: list(
        hook.list_consents(date_from="2026-01-01T00:00:00Z", date_to="2026-02-01T00:00:00Z", max_pages=3)
    ),
    "find_consent": lambda hook: hook.find_consent("1", oa_id=OA, phone=PHONE, max_pages=3),
    "request_consent": lambda hook: hook.request_consent(
        oa_id=OA, phone=PHONE, call_type="audio", reason_code="update_order"
    ),
    "check_consent": lambda hook: hook.check_consent(oa_id=OA, phone=PHONE),
    "current_account": lambda hook: hook.client.current_account(),
}


def _serve(server: CannedServer, status: int, body: bytes, header: str | None, repeat: int = 3) -> None:
    server.answers.clear()
    for _ in range(repeat):  # a listing may page: give it the same answer again
        server.add(body, status=status, headers={"Retry-After": header} if header is not None else None)


#: Bounded and reproducible: the same examples on every run and no example database in the repository.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def hook(canned: CannedServer) -> Iterator[EtelecomHook]:
    hook = _hook()
    yield hook
    hook.close()


def _only_provider_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except EtelecomError as error:
        assert SECRET_KEY not in str(error)


@pytest.mark.parametrize("call", list(CALLS))
@settings(FUZZ, max_examples=40)  # six calls: 240 answers in all
@given(status=statuses, body=bodies, header=retry_after)
def test_random_answers_raise_only_provider_errors(
    canned: CannedServer, hook: EtelecomHook, call: str, status: int, body: bytes, header: str | None
) -> None:
    _serve(canned, status, body, header)
    _only_provider_errors(lambda: CALLS[call](hook))


pages = st.fixed_dictionaries(
    {"consents": st.lists(st.fixed_dictionaries({}, optional={name: values for name in FIELDS}), max_size=4)},
    optional={"paging": paging},
)
text_times = st.one_of(st.text(max_size=25), st.sampled_from(["2026-01-05T03:04:05Z", "2026-01-31T23:59:59+07:00"]))
string_time_pages = st.fixed_dictionaries(
    {
        "consents": st.lists(
            st.fixed_dictionaries({"created_at": text_times}, optional={"id": values, "reply_status": values}),
            max_size=4,
        )
    },
    optional={"paging": paging},
)


@pytest.mark.parametrize("call", ["list_consents", "find_consent"])
@FUZZ
@given(page=pages)
def test_near_miss_pages_raise_only_provider_errors(
    canned: CannedServer, hook: EtelecomHook, call: str, page: dict[str, Any]
) -> None:
    _serve(canned, 200, json.dumps(page).encode(), None)
    _only_provider_errors(lambda: CALLS[call](hook))


@FUZZ
@given(page=string_time_pages)
def test_near_miss_pages_in_a_window_with_string_times_raise_only_provider_errors(
    canned: CannedServer, hook: EtelecomHook, page: dict[str, Any]
) -> None:
    _serve(canned, 200, json.dumps(page).encode(), None)
    _only_provider_errors(lambda: CALLS["list_consents_window"](hook))


@settings(FUZZ, phases=[Phase.explicit, Phase.generate])  # no shrinking: the bug is known, keep it fast
@given(page=pages)
def test_near_miss_pages_in_a_window_raise_only_provider_errors(
    canned: CannedServer, hook: EtelecomHook, page: dict[str, Any]
) -> None:
    _serve(canned, 200, json.dumps(page).encode(), None)
    _only_provider_errors(lambda: CALLS["list_consents_window"](hook))


def test_a_non_string_created_at_in_a_windowed_listing_is_a_provider_error(canned: CannedServer) -> None:
    page: dict[str, Any] = {"consents": [{"id": "1", "created_at": 1767225600}], "paging": {"next": "", "limit": 100}}
    _serve(canned, 200, json.dumps(page).encode(), None)
    with pytest.raises(EtelecomError):
        CALLS["list_consents_window"](_hook())
