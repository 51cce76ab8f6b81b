"""``python -m airflow_provider_etelecom.contract``: what it prints, its exit status, the key, RequestConsent.

Most runs call :func:`main` in-process against an in-process simulator, so the cursor-expiry wait
drives the simulator's clock instead of sleeping; one runs the real command in a child process.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_etelecom.contract.__main__ import API_KEY_ENV, build_parser, main
from airflow_provider_etelecom.contract.report import EXTRA_HEADING
from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, EtelecomSimulator
from tests.conftest import SECRET_KEY

PHONE = "0912 345 678"
CONN_ENV = "AIRFLOW_CONN_ETELECOM_CHECK"


class Run:
    """One in-process run of the command: its exit status, stdout and stderr."""

    def __init__(self, argv: list[str], sim: EtelecomSimulator | None, environ: dict[str, str] | None = None) -> None:
        out, err = io.StringIO(), io.StringIO()
        env = {API_KEY_ENV: SECRET_KEY} if environ is None else environ
        self.code = main(argv, environ=env, sleep=sim.advance if sim else _no_sleep, stdout=out, stderr=err)
        self.out, self.err = out.getvalue(), err.getvalue()
        assert SECRET_KEY not in self.out + self.err

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def extra(self) -> dict[str, Any]:
        lines = self.lines
        assert lines[-2].startswith(EXTRA_HEADING)
        extra: dict[str, Any] = json.loads(lines[-1])
        return extra

    def entry(self, behaviour: str) -> tuple[str, str]:
        """Return the finding line and the action line of ``behaviour``."""
        lines = self.lines
        at = next(i for i, line in enumerate(lines) if line.split(":")[0].split(" (")[0] == behaviour)
        return lines[at], lines[at + 1]


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"the command slept {seconds} s against no simulator")


def _simulator(variant: str = "defaults", **switches: Any) -> EtelecomSimulator:
    return EtelecomSimulator(consents=500, seed=5, api_key=SECRET_KEY, **{**PLATFORM_VARIANTS[variant], **switches})


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with _simulator() as simulator:
        yield simulator


def test_defaults_find_nothing_to_set_and_send_no_consent_request(sim: EtelecomSimulator) -> None:
    run = Run(["--base-url", sim.base_url], sim)
    assert run.code == 0
    assert run.lines[0] == f"eTelecom platform check of {sim.base_url} (key from ${API_KEY_ENV})"
    assert run.lines[1].startswith("account: Simulated Shop; ") and run.lines[1].endswith(" 0 of them RequestConsent")
    assert run.entry("cursor") == (
        "cursor: a page ended inside a tie went on with the rest of it, and a cursor reused under a filter kept its "
        "position: the cursor is a (created_at, id) keyset",
        "  -> nothing to set: the provider handles it",
    )
    assert run.entry("cursor_expiry")[0] == (
        "cursor_expiry: a cursor still works 65 s after it was issued (a longer expiry is not excluded)"
    )
    assert "differs" not in run.out
    assert run.lines[-2] == f"{EXTRA_HEADING}: none; the provider handles everything found as it is."
    assert run.extra == {}
    assert run.entry("pending_conflict")[0].startswith("pending_conflict: not checked: needs RequestConsent")
    assert sim.stats.count(method="Zalo/RequestConsent") == 0
    assert "checking cursor: " in run.err


def test_a_filter_zone_prints_its_setting_and_the_extra() -> None:
    with _simulator("filter_local_zone") as sim:
        run = Run(["--base-url", sim.base_url, "--cursor-wait", "0"], sim)
    assert run.code == 0
    line, action = run.entry("filter_zone")
    assert line.startswith("filter_zone (differs from the simulator's defaults): the date filters ignore the offset")
    assert (
        action
        == '  -> set platform_filter_zone: "Asia/Ho_Chi_Minh" (filters are then written in that zone; no extra cost)'
    )
    assert run.entry("cursor_expiry")[0].startswith("cursor_expiry: not checked: give --cursor-wait")
    assert run.extra == {"platform_filter_zone": "Asia/Ho_Chi_Minh"}


def test_several_settings_make_one_extra() -> None:
    with _simulator("shown_local_as_z", date_filter_field="updated_at") as sim:
        run = Run(["--base-url", sim.base_url, "--cursor-wait", "0", "--pages", "2"], sim)
    assert run.code == 0
    assert run.extra == {"platform_shown_zone": "Asia/Ho_Chi_Minh", "date_filters_on_client": True}
    assert run.entry("filter_precision")[0].startswith("filter_precision: not checked: the date filters do not bound")


def test_costs_are_said_where_the_provider_copes_by_itself() -> None:
    with _simulator("cursor_offset") as sim:
        run = Run(["--base-url", sim.base_url, "--cursor-wait", "0"], sim)
    assert "run exports with verification" in run.entry("cursor")[1]
    assert run.extra == {}
    with _simulator("cursor_value_lt") as sim:
        run = Run(["--base-url", sim.base_url, "--cursor-wait", "0"], sim)
    assert "about one consent read twice per page" in run.entry("cursor")[1]


def test_an_expiring_cursor_is_found_by_driving_the_clock() -> None:
    with _simulator("cursor_expiry") as sim:
        run = Run(["--base-url", sim.base_url, "--cursor-wait", "90"], sim)
    line, action = run.entry("cursor_expiry")
    assert line.startswith("cursor_expiry (differs from the simulator's defaults): a cursor 90 s old is refused")
    assert "goes on from its last consent by a date bound" in action


def test_oa_and_phone_alone_send_nothing(sim: EtelecomSimulator) -> None:
    run = Run(["--base-url", sim.base_url, "--cursor-wait", "0", "--oa-id", sim.oa_ids[0], "--phone", PHONE], sim)
    assert run.code == 0
    assert "RequestConsent not sent: --oa-id and --phone are used only with --allow-request-consent" in run.err
    assert sim.stats.count(method="Zalo/RequestConsent") == 0


def test_request_consent_is_sent_at_most_twice_when_allowed() -> None:
    with _simulator("pending_conflict") as sim:
        argv = ["--base-url", sim.base_url, "--cursor-wait", "0", "--oa-id", sim.oa_ids[0], "--phone", PHONE]
        run = Run([*argv, "--allow-request-consent"], sim)
        assert run.code == 0
        assert sim.stats.count(method="Zalo/RequestConsent") == 2
        assert sim.stats.count(method="Zalo/RequestConsent", status=409) == 1
    assert run.lines[1].endswith(" 2 of them RequestConsent")
    assert run.entry("pending_conflict")[0].startswith("pending_conflict (differs from the simulator's defaults): ")
    assert run.entry("listing_lag")[0] == "listing_lag: a new consent is listable at once (no listing lag seen)"


def test_no_option_carries_the_key() -> None:
    options = {option for action in build_parser()._actions for option in action.option_strings}
    assert not {o for o in options if "key" in o}


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ([], {}, "one of the arguments --conn-id --base-url is required"),
        (["--conn-id", "x", "--base-url", "https://api.etelecom.vn/v1/shop"], {}, "not allowed with argument"),
        (["--base-url", "https://api.etelecom.vn/v1/shop"], {}, f"environment variable {API_KEY_ENV}"),
        (["--base-url", "https://api.etelecom.vn/v1/shop", "--api-key", "k"], {}, "unrecognized arguments: --api-key"),
        (["--base-url", "ftp://api.etelecom.vn/v1/shop"], None, "must be a full URL with scheme"),
        (["--base-url", "http://api.etelecom.vn/v1/shop"], None, "allow_insecure_http"),
        (
            ["--base-url", "https://x/v1/shop", "--allow-request-consent", "--oa-id", "1"],
            None,
            "needs --oa-id and --phone",
        ),
        (["--base-url", "https://x/v1/shop", "--oa-id", "1", "--phone", "12"], None, "is not a Vietnamese phone"),
        (["--base-url", "https://x/v1/shop", "--pages", "0"], None, "must be 1 or more"),
        (["--base-url", "https://x/v1/shop", "--cursor-wait", "-1"], None, "must be a number of seconds"),
        (["--base-url", "https://x/v1/shop", "--retries", "-1"], None, "must be 0 or more"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_change(
    argv: list[str], environ: dict[str, str] | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(argv, None, environ)
    assert run.code == 2
    assert message in run.err + capsys.readouterr().err  # argparse writes its own errors to sys.stderr
    assert run.out == ""


def test_an_unreachable_platform_exits_1_naming_what_to_fix() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    run = Run(["--base-url", f"http://127.0.0.1:{port}/v1/shop", "--retries", "0"], None)
    assert run.code == 1 and run.out == ""
    assert f"could not reach http://127.0.0.1:{port}/v1/shop" in run.err
    assert "Check the base URL, the network and any proxy" in run.err


def test_a_refused_key_exits_1_without_showing_it(sim: EtelecomSimulator) -> None:
    wrong = "wrong-" + SECRET_KEY
    run = Run(["--base-url", sim.base_url], sim, {API_KEY_ENV: wrong})
    assert run.code == 1 and run.out == ""
    assert "the platform refused the key" in run.err and "401" in run.err
    assert wrong not in run.err


def test_a_wrong_path_exits_1_naming_the_base_url(sim: EtelecomSimulator) -> None:
    run = Run(["--base-url", sim.root_url + "/gateway/v1/partner"], sim)
    assert run.code == 1
    assert "Fix the base URL" in run.err


def _connection(sim: EtelecomSimulator, **extra: object) -> str:
    return json.dumps({"conn_type": "etelecom", "host": sim.base_url, "password": sim.api_key, "extra": extra})


def test_conn_id_reads_the_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with _simulator() as sim:
        monkeypatch.setenv(CONN_ENV, _connection(sim, platform_shown_zone="Asia/Ho_Chi_Minh"))
        run = Run(["--conn-id", "etelecom_check", "--cursor-wait", "0"], sim, {})
    assert run.code == 0
    assert run.lines[0] == f"eTelecom platform check of {sim.base_url} (connection 'etelecom_check')"
    assert any(line.startswith("remove platform_shown_zone: answers show true UTC") for line in run.lines)
    assert run.extra == {}
    with _simulator("filter_local_zone") as sim:
        monkeypatch.setenv(CONN_ENV, _connection(sim, platform_filter_zone="Asia/Ho_Chi_Minh"))
        run = Run(["--conn-id", "etelecom_check", "--cursor-wait", "0"], sim, {})
    assert 'already set: platform_filter_zone: "Asia/Ho_Chi_Minh"' in run.lines
    assert run.extra == {}


def test_conn_id_errors_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONN_ENV, raising=False)
    run = Run(["--conn-id", "etelecom_check"], None, {})
    assert run.code == 2 and "connection 'etelecom_check' is not defined" in run.err
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "etelecom", "host": "https://api.etelecom.vn/v1/shop"}))
    run = Run(["--conn-id", "etelecom_check"], None, {})
    assert run.code == 2 and "no API key" in run.err


def test_the_command_runs_in_a_child_process_and_imports_no_airflow(sim: EtelecomSimulator) -> None:
    """The real entry point, the key handed over in the environment only; Airflow is imported for --conn-id only."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['contract', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('airflow_provider_etelecom.contract', run_name='__main__')\n"
        "finally:\n"
        "    print('airflow imported:', any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules),"
        " file=sys.stderr)\n"
    )
    env = {**os.environ, API_KEY_ENV: SECRET_KEY, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-c", code, "--base-url", sim.base_url, "--cursor-wait", "0", "--pages", "2"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "airflow imported: False" in done.stderr
    assert SECRET_KEY not in done.stdout + done.stderr + " ".join(args)
    assert json.loads(done.stdout.splitlines()[-1]) == {}
    assert sim.stats.count(method="Zalo/RequestConsent") == 0
    usage = subprocess.run(
        [sys.executable, "-m", "airflow_provider_etelecom.contract"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "--conn-id" in usage.stderr
