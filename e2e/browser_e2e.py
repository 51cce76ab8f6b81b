"""The real-browser end-to-end test (run by ``scripts/e2e``; not collected by pytest).

Starts the wired local Airflow of ``scripts/airflow-ui`` (standalone + simulator + connection),
then, in headless Debian Chromium driven by Playwright:

1. logs in through the simple auth manager's login page;
2. opens Admin > Connections > Add Connection, picks the type "eTelecom" and checks the form:
   Base URL, API key (a password input), Account type, Timeout, Max retries, Max retry time, and no
   Schema / Login / Port field; the connection-form screenshot goes to ``docs/screenshots/``;
3. triggers ``etelecom_consents_daily`` and ``etelecom_request_and_wait`` (REST API), watches both
   runs in the UI and checks they succeed, the second with its ``ConsentReplySensor`` seen in the
   ``deferred`` state and its trigger run by the real triggerer.

Exit 0 when every check passed, 1 with the failed check's message otherwise. Screenshots of every
step are in ``.e2e/screenshots/``.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from _local_airflow import ROOT, STANDALONE_LOG_PORTS, Api, WiredAirflow, say, stop_on_sigterm, wired_airflow

WORKDIR = ROOT / ".e2e"
SHOTS = WORKDIR / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
DAILY_DAG = "etelecom_consents_daily"
WAIT_DAG = "etelecom_request_and_wait"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STANDARD_FIELDS = {"Base URL": "host", "API key": "password"}
EXTRA_FIELDS = ("Account type", "Timeout", "Max retries", "Max retry time")
HIDDEN_FIELDS = ("schema", "login", "port")


class CheckFailed(Exception):
    """One end-to-end check did not hold."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)
    print(f"  ok: {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="API server / UI port (default 8080)")
    parser.add_argument("--run-timeout", type=float, default=300, help="seconds each DAG run may take (300)")
    args = parser.parse_args()
    stop_on_sigterm()
    started = time.monotonic()
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        # Customers answer 15 s after a request: long enough to see the sensor deferred on the triggerer.
        with wired_airflow(WORKDIR / "run", port=args.port, reply_after=15.0) as airflow:
            _clear_screenshots()
            _check_loopback_only(args.port)
            _browser_checks(airflow, args.run_timeout)
    except KeyboardInterrupt:
        say("E2E interrupted; everything it started is stopped")
        return 130
    except CheckFailed as failed:
        say(f"E2E FAILED: {failed}")
        return 1
    except Exception:
        traceback.print_exc()
        say("E2E FAILED with an error (see above); logs in .e2e/run/logs/")
        return 1
    say(f"E2E passed in {time.monotonic() - started:.0f} s; screenshots in {SHOTS}")
    return 0


def _listening_addresses(port: int) -> set[str]:
    """Return the local addresses listening on TCP ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port and len(address) == width:
                if width == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add("::" if int(address, 16) == 0 else "::1" if address.endswith("01000000") else address)
    return found


def _check_loopback_only(api_port: int) -> None:
    """The UI's only login is admin/admin: the API server and log servers must listen on loopback only."""
    for port in (api_port, *STANDALONE_LOG_PORTS):
        addresses = _listening_addresses(port)
        check(addresses == {"127.0.0.1"}, f"port {port} listens on 127.0.0.1 only ({', '.join(sorted(addresses))})")


def _clear_screenshots() -> None:
    for old in SHOTS.glob("*.png"):
        old.unlink()


def _browser_checks(airflow: WiredAirflow, run_timeout: float) -> None:
    from playwright.sync_api import sync_playwright

    api = airflow.api()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            _login(page, airflow)
            _check_connection_form(page, airflow)
            _check_runs(page, airflow, api, run_timeout)
        finally:
            browser.close()


def _login(page: Any, airflow: WiredAirflow) -> None:
    say("Browser: log in")
    page.goto(airflow.url + "/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill(airflow.username)
    page.locator("input[name=password]").fill(airflow.password)
    page.screenshot(path=SHOTS / "01-login.png")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.get_by_role("button", name="Admin").wait_for()
    page.screenshot(path=SHOTS / "02-home.png")
    check("/auth/login" not in page.url, f"logged in as {airflow.username} (landed on {page.url})")


def _check_connection_form(page: Any, airflow: WiredAirflow) -> None:
    say("Browser: the eTelecom connection form")
    page.goto(airflow.url + "/connections")
    page.get_by_text("etelecom_default").first.wait_for()
    check(page.get_by_text("etelecom_default").count() > 0, "etelecom_default is listed in Admin > Connections")
    page.screenshot(path=SHOTS / "03-connections.png")
    _check_test_connection(page, airflow)

    page.get_by_role("button", name="Add Connection").click()
    page.locator("input[name=connection_id]").fill("my_etelecom")
    combobox = page.get_by_role("combobox").first
    combobox.click(force=True)  # the placeholder intercepts a normal click
    page.keyboard.type("eTelecom")
    page.get_by_role("option", name="eTelecom").first.wait_for()
    page.keyboard.press("Enter")
    page.locator("input[name=host]").wait_for(state="visible")

    for label, name in STANDARD_FIELDS.items():
        field = page.locator(f"input[name={name}]")
        check(field.is_visible(), f"standard field {name!r} is shown")
        check(page.get_by_text(label, exact=True).first.is_visible(), f"it is labelled {label!r}")
    check(page.locator("input[name=password]").get_attribute("type") == "password", "the API key input is masked")
    for name in HIDDEN_FIELDS:
        check(page.locator(f"input[name={name}]:visible").count() == 0, f"the {name!r} field is hidden")
    DOC_SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=DOC_SHOTS / "connection-form.png")
    page.screenshot(path=SHOTS / "04-connection-form.png")

    page.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in EXTRA_FIELDS:
        field_label = page.locator("label").filter(has_text=label).first
        field_label.wait_for(state="visible")
        check(field_label.is_visible(), f"extra field {label!r} is shown")
    page.screenshot(path=DOC_SHOTS / "connection-form-extra.png")
    page.screenshot(path=SHOTS / "05-connection-form-extra.png")
    page.keyboard.press("Escape")


def _check_test_connection(page: Any, airflow: WiredAirflow) -> None:
    """Press the row's Test Connection button and read the answer of the request it makes."""
    with page.expect_response(lambda r: r.url.endswith("/connections/test")) as answer:
        page.get_by_role("button", name="Test Connection").first.click()
    status, body = answer.value.status, answer.value.text()
    page.wait_for_timeout(1000)
    page.screenshot(path=SHOTS / "03b-test-connection.png")
    check(
        status == 200 and '"status":true' in body.replace(" ", ""),
        f"Test Connection of etelecom_default succeeds in the UI (HTTP {status}: {body[:300]})",
    )


def _check_runs(page: Any, airflow: WiredAirflow, api: Api, run_timeout: float) -> None:
    say(f"Triggering {DAILY_DAG} and {WAIT_DAG}")
    now = datetime.now(timezone.utc).isoformat()
    daily = api.post(f"/api/v2/dags/{DAILY_DAG}/dagRuns", {"logical_date": now})["dag_run_id"]
    wait = api.post(f"/api/v2/dags/{WAIT_DAG}/dagRuns", {"logical_date": now})["dag_run_id"]
    tasks = api.get(f"/api/v2/dags/{WAIT_DAG}/tasks")["tasks"]
    sensors = [t["task_id"] for t in tasks if "ConsentReplySensor" in str(t.get("operator_name") or t.get("class_ref"))]
    check(len(sensors) == 1, f"{WAIT_DAG} has one ConsentReplySensor ({sensors})")
    sensor = sensors[0]

    runs = {DAILY_DAG: daily, WAIT_DAG: wait}
    states: dict[str, str] = {}
    sensor_states: list[str] = []
    deferred_shot = False
    deadline = time.monotonic() + run_timeout
    while len(states) < len(runs):
        if time.monotonic() > deadline:
            raise CheckFailed(f"runs not finished after {run_timeout:.0f} s: {_run_states(api, runs)}")
        for dag_id, run_id in runs.items():
            if dag_id not in states:
                state = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}")["state"]
                if state in ("success", "failed"):
                    states[dag_id] = state
                    say(f"{dag_id} {run_id}: {state}")
        ti_state = str(_task_instance(api, WAIT_DAG, wait, sensor).get("state"))
        if not sensor_states or sensor_states[-1] != ti_state:
            sensor_states.append(ti_state)
            say(f"{WAIT_DAG}.{sensor}: {ti_state}")
        if ti_state == "deferred" and not deferred_shot:
            deferred_shot = True
            _show_run(page, airflow, WAIT_DAG, wait, "06-request-and-wait-deferred.png")
        time.sleep(1)

    for dag_id, run_id in runs.items():
        _show_run(page, airflow, dag_id, run_id, f"07-{dag_id}-done.png")
        tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances")["task_instances"]
        summary = ", ".join(f"{ti['task_id']}={ti['state']}" for ti in tis)
        check(states[dag_id] == "success", f"{dag_id} run succeeded ({summary})")
    check("deferred" in sensor_states, f"{sensor} went through 'deferred' (states seen: {' -> '.join(sensor_states)})")
    _check_triggerer_ran(airflow, wait, sensor)
    _print_export(api, runs[DAILY_DAG])


def _task_instance(api: Api, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    try:
        return dict(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}"))
    except RuntimeError as err:
        if "HTTP 404" in str(err):
            return {"state": "none"}
        raise


def _run_states(api: Api, runs: dict[str, str]) -> str:
    parts = []
    for dag_id, run_id in runs.items():
        tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances")["task_instances"]
        parts.append(f"{dag_id}: " + ", ".join(f"{ti['task_id']}={ti['state']}" for ti in tis))
    return "; ".join(parts)


def _show_run(page: Any, airflow: WiredAirflow, dag_id: str, run_id: str, name: str) -> None:
    page.goto(f"{airflow.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
    page.get_by_text(dag_id).first.wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=SHOTS / name)


def _check_triggerer_ran(airflow: WiredAirflow, run_id: str, sensor: str) -> None:
    """The triggerer writes the trigger's log next to the task's: ``attempt=N.log.trigger.ID.log``."""
    folder = airflow.home / "logs" / f"dag_id={WAIT_DAG}" / f"run_id={run_id}" / f"task_id={sensor}"
    logs = sorted(folder.glob("attempt=*.log.trigger.*.log"))
    fired = [p.name for p in logs if "Trigger fired event" in p.read_text(errors="replace")]
    check(bool(fired), f"the triggerer ran the sensor's trigger and it fired ({', '.join(fired) or 'no trigger log'})")


def _print_export(api: Api, run_id: str) -> None:
    tis = api.get(f"/api/v2/dags/{DAILY_DAG}/dagRuns/{quote(run_id)}/taskInstances")["task_instances"]
    for ti in tis:
        if "ListConsentsOperator" not in str(ti.get("operator")):
            continue
        path = (
            f"/api/v2/dags/{DAILY_DAG}/dagRuns/{quote(run_id)}/taskInstances/{ti['task_id']}/xcomEntries/return_value"
        )
        try:
            value = api.get(path).get("value")
        except RuntimeError as err:
            value = f"(no XCom: {err})"
        print(f"  export {ti['task_id']}: {value}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
