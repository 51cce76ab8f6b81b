"""Red-team attacks on the transport (``client/client.py``): key leaks, hangs, absurd Retry-After.

Each test names what an earlier client let through (a key in a message, a request with no end) and
asserts that it no longer does.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient
from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomRateLimitError, EtelecomTransientError
from tests.attack.conftest import START, WINDOW, make_client, spaced_rows
from tests.attack.platform import KEY, MiniPlatform

# ------------------------------------------------------------------------------------------------
# An HTTP 200 whose JSON body is an error that echoes the key (an auth gateway's "invalid token:
# <key>", a proxy echoing the request) reached exception messages and the retry warnings: non-200
# bodies were scrubbed before parsing, 200 bodies never were.
# ------------------------------------------------------------------------------------------------


def _echo_key_in_a_200(method: str, body: dict[str, Any], n: int) -> Any:
    return 200, {"code": "unauthenticated", "msg": f"api_key không hợp lệ: Bearer {KEY}"}, {}


@pytest.mark.parametrize("call", ["listing", "current_account", "check_consent"])
def test_a_key_echoed_in_a_200_error_body_reaches_neither_the_exception_nor_the_log(
    call: str, caplog: pytest.LogCaptureFixture
) -> None:
    platform = MiniPlatform([])
    platform.hooks.append(_echo_key_in_a_200)
    with platform, caplog.at_level(logging.WARNING):
        client = make_client(platform.base_url, max_retries=1)
        with pytest.raises(EtelecomError) as caught:
            if call == "listing":
                list(client.iter_consents(ConsentQuery.build()))
            elif call == "current_account":
                client.current_account()
            else:
                client.check_consent(oa_id="1", phone="0912000444")
    assert KEY not in str(caught.value)  # the exception Airflow logs and shows in the UI
    assert KEY not in caplog.text  # "eTelecom request failed (...); retry 1 of 1"
    assert "***" in str(caught.value)


def test_OK_the_same_echo_in_a_401_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    platform = MiniPlatform([])
    platform.hooks.append(
        lambda m, b, n: (401, {"code": "unauthenticated", "msg": f"api_key không hợp lệ: Bearer {KEY}"}, {})
    )
    with platform, caplog.at_level(logging.WARNING), pytest.raises(EtelecomError) as caught:
        make_client(platform.base_url).current_account()
    assert KEY not in str(caught.value) and KEY not in caplog.text


def test_a_key_json_escaped_in_an_error_body_is_scrubbed_after_decoding() -> None:
    # Keys are opaque secrets; a base64-style one holds '/' and '+'. An encoder that escapes '/'
    # (PHP, many gateways) or writes non-ASCII as \\u escapes puts bytes on the wire that differ
    # from the key; the scrub ran on the raw bytes only, the message is built from the decoded JSON.
    key = "1234:s3cr/et+Abc/9x"
    escaped = key.replace("/", "\\/")
    body = ('{"code":"unauthenticated","msg":"invalid api_key ' + escaped + '"}').encode()
    platform = MiniPlatform([], api_key=key)
    platform.hooks.append(lambda m, b, n: (401, body, {}))
    with platform, pytest.raises(EtelecomError) as caught:
        make_client(platform.base_url, api_key=key).current_account()
    assert key not in str(caught.value)
    assert caught.value.msg is not None and key not in caught.value.msg  # type: ignore[attr-defined]
    assert "***" in caught.value.msg  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------
# `timeout` was a per-read socket timeout, and `max_retry_time` is checked only between attempts, so
# an answer that trickles (a proxy's keep-alive bytes, a slow link) was waited for without bound: a
# 1 s timeout and a 1 s retry budget held one request for over 8 s. The whole answer now has to
# arrive within the connect timeout plus `timeout`.
# ------------------------------------------------------------------------------------------------

TRICKLED = b" " * 30 + b'{"id": "1"}'


@pytest.fixture
def trickling_server() -> Iterator[tuple[str, list[int]]]:
    """A server answering one byte every 0.1 s (4 s for the whole answer); it counts the bytes it sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()
    sent = [0]

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                conn.sendall(b"Content-Length: %d\r\n\r\n" % len(TRICKLED))
                for byte in TRICKLED:
                    if stop.is_set():
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:  # the client gave up and closed the connection
                        break
                    sent[0] += 1
                    stop.wait(0.1)  # the trickle's pace, not a synchronisation

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/shop", sent
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_a_trickling_answer_fails_once_the_timeout_is_spent(trickling_server: tuple[str, list[int]]) -> None:
    base_url, sent = trickling_server
    config = ClientConfig.build(base_url=base_url, api_key=KEY, timeout=1, max_retries=0, max_retry_time=1)
    client = EtelecomClient(dataclasses.replace(config, connect_timeout=0.5))
    with pytest.raises(EtelecomTransientError, match=r"took longer than timeout=1 s to arrive in full"):
        client.current_account()
    assert sent[0] < len(TRICKLED)  # given up while the answer was still trickling in


# ------------------------------------------------------------------------------------------------
# Handled: absurd Retry-After values fail at once (no day-long sleep), inside the retry budget.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["86400", "1e12", "inf", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_OK_an_absurd_retry_after_fails_fast_naming_the_rate_limit(retry_after: str) -> None:
    platform = MiniPlatform(spaced_rows(START, 10, seed=1))
    platform.hooks.append(
        lambda m, b, n: (429, {"code": "resource_exhausted", "msg": "chậm lại"}, {"Retry-After": retry_after})
    )
    slept: list[float] = []
    with platform:
        config = ClientConfig.build(base_url=platform.base_url, api_key=KEY, max_retries=5, max_retry_time=300)
        client = EtelecomClient(config, sleep=slept.append)
        with pytest.raises(EtelecomRateLimitError):
            list(client.iter_consents(ConsentQuery.build(date_from=WINDOW[0], date_to=WINDOW[1])))
    assert slept == [] and len(platform.log) == 1  # failed at once: no day-long sleep, no second request
