"""Command line: check what the real platform does about each unconfirmed behaviour, read-only.

``python -m airflow_provider_etelecom.contract --conn-id etelecom_default``, or
``ETELECOM_API_KEY=... python -m airflow_provider_etelecom.contract --base-url https://api.etelecom.vn/v1/shop``.

It prints, per behaviour, what it found and what follows for the connection, then the connection
extra to add as JSON. The key is read from the connection or from ``ETELECOM_API_KEY``, never from
the command line (shell history and ``ps`` would keep it), and appears in no output. Exit status:
0 when it ran (whatever it found), 2 on a usage error (the message says what to change), 1 when the
platform could not be reached or refused the key. ``RequestConsent`` (a charged message) is sent
only with ``--oa-id``, ``--phone`` (your own) and ``--allow-request-consent``, and then at most
:data:`~airflow_provider_etelecom.contract.runner.MAX_CONSENT_REQUESTS` times. Airflow is imported
only for ``--conn-id``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from airflow_provider_etelecom.client import ClientConfig
from airflow_provider_etelecom.client.validation import normalize_phone, validate_int64_id
from airflow_provider_etelecom.contract.probe import Probe
from airflow_provider_etelecom.contract.report import current_settings, render
from airflow_provider_etelecom.contract.runner import MAX_CONSENT_REQUESTS, CheckOptions, run_checks
from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomConfigError,
    EtelecomError,
    EtelecomNotFoundError,
    EtelecomTransientError,
    EtelecomValidationError,
)

#: Where ``--base-url`` takes the key from.
API_KEY_ENV = "ETELECOM_API_KEY"
EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """A usage error: the message says what to change."""


def build_parser() -> argparse.ArgumentParser:
    """Return the command's parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_etelecom.contract",
        description=(
            "Check, read-only, what the eTelecom platform does about each behaviour its docs leave open, and "
            "which connection settings follow. The key comes from the Airflow connection (--conn-id) or from "
            f"${API_KEY_ENV} (--base-url), never from the command line."
        ),
        epilog="Exit status: 0 it ran, 1 the platform could not be reached or refused the key, 2 usage error.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--conn-id", help="an Airflow connection of type etelecom (its base URL and API key)")
    where.add_argument("--base-url", help=f"e.g. https://api.etelecom.vn/v1/shop; the key from ${API_KEY_ENV}")
    parser.add_argument(
        "--allow-insecure-http", action="store_true", help="allow http:// to a non-loopback host (with --base-url)"
    )
    parser.add_argument("--pages", type=_positive_int, default=10, help="newest pages of 100 to read (default 10)")
    parser.add_argument(
        "--retries",
        type=_count,
        default=4,
        help="retries of a read answered 429/502/503/504 or cut off, with back-off (default 4; never RequestConsent)",
    )
    parser.add_argument(
        "--cursor-wait",
        type=_seconds,
        default=65.0,
        help="seconds to keep a cursor before reusing it, to see whether it expires (default 65; 0 skips)",
    )
    charged = parser.add_argument_group(
        "RequestConsent (charged)",
        f"Sent only with all three options, at most {MAX_CONSENT_REQUESTS} times: one consent request to your "
        "phone (listing lag, clocks, shown zone), and a second one while the first is pending (the 409 check).",
    )
    charged.add_argument("--oa-id", help="the Official Account to request consent through")
    charged.add_argument("--phone", help="YOUR OWN phone: it receives the consent request(s)")
    charged.add_argument(
        "--allow-request-consent", action="store_true", help="allow sending RequestConsent (charged messages)"
    )
    charged.add_argument("--lag-step", type=_seconds, default=5.0, help="seconds between looks for it (default 5)")
    charged.add_argument("--lag-budget", type=_seconds, default=300.0, help="how long to look (default 300)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _config_from_connection(conn_id: str) -> tuple[ClientConfig, str]:
    """Read the Airflow connection (importing Airflow only now) into the client's settings."""
    from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

    hook = EtelecomHook(conn_id)
    try:
        conn = hook.get_connection(conn_id)
    except Exception as error:  # Airflow 2 and 3 raise AirflowNotFoundException from different modules
        if type(error).__name__ == "AirflowNotFoundException":
            raise _UsageError(
                f"connection {conn_id!r} is not defined: create it (type etelecom) or pass its id with --conn-id"
            ) from None
        raise _UsageError(f"could not read connection {conn_id!r}: {type(error).__name__}: {error}") from None
    try:
        config = hook.config_from_connection(conn)
    except EtelecomConfigError as error:
        raise _UsageError(f"connection {conn_id!r}: {error.message}") from None
    return config, f"connection {conn_id!r}"


def _config_from_url(base_url: str, environ: Mapping[str, str], insecure: bool) -> tuple[ClientConfig, str]:
    key = environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise _UsageError(
            f"set the API key in the environment variable {API_KEY_ENV} (never on the command line, where shell "
            f"history and ps keep it), or use --conn-id"
        )
    try:
        config = ClientConfig.build(base_url=base_url, api_key=key, allow_insecure_http=insecure)
    except EtelecomConfigError as error:
        raise _UsageError(error.message) from None
    return config, f"key from ${API_KEY_ENV}"


def _options(args: argparse.Namespace) -> tuple[CheckOptions, int, list[str]]:
    notes = []
    oa_id = phone = None
    if args.allow_request_consent and not (args.oa_id and args.phone):
        raise _UsageError("--allow-request-consent needs --oa-id and --phone (your own phone)")
    try:
        if args.oa_id:
            oa_id = validate_int64_id("--oa-id", args.oa_id)
        if args.phone:
            phone = normalize_phone(args.phone, parameter="--phone")
    except EtelecomValidationError as error:
        raise _UsageError(error.message) from None
    if (oa_id or phone) and not args.allow_request_consent:
        notes.append("RequestConsent not sent: --oa-id and --phone are used only with --allow-request-consent")
    allowed = MAX_CONSENT_REQUESTS if args.allow_request_consent else 0
    options = CheckOptions(
        pages=args.pages,
        cursor_wait_s=args.cursor_wait,
        oa_id=oa_id,
        phone=phone,
        lag_step_s=args.lag_step,
        lag_budget_s=args.lag_budget,
    )
    return options, allowed, notes


def _unreachable(error: EtelecomError, target: str) -> str:
    if isinstance(error, EtelecomAuthError):
        return (
            f"the platform refused the key ({error.message}). Fix the key: the connection's API key (password), or "
            f"${API_KEY_ENV} with --base-url; a shop key goes with /v1/shop, a partner's shop_key with /v1/partner."
        )
    if isinstance(error, EtelecomNotFoundError):
        return f"{target} answered 404 ({error.message}). Fix the base URL: it must end at /v1/shop or /v1/partner."
    if isinstance(error, EtelecomTransientError):
        return f"could not reach {target}: {error.message}. Check the base URL, the network and any proxy."
    return f"{target} did not answer as eTelecom does: {error.message}"


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the check and print the report; return the exit status.

    :param environ: where ``ETELECOM_API_KEY`` is read (default ``os.environ``).
    :param sleep: how to wait (tests drive the simulator's clock instead).
    """
    out, err = stdout or sys.stdout, stderr or sys.stderr
    environ = os.environ if environ is None else environ
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse prints its usage error itself (status 2), or --help (0)
        return int(stop.code or 0)
    try:
        options, allowed, notes = _options(args)
        if args.conn_id:
            config, source = _config_from_connection(args.conn_id)
        else:
            config, source = _config_from_url(args.base_url, environ, args.allow_insecure_http)
    except _UsageError as error:
        print(f"{parser.prog}: error: {error}", file=err)
        return EXIT_USAGE
    for note in notes:
        print(note, file=err)
    target = f"{config.base_url} ({source})"

    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    probe = Probe(
        config.base_url, config.api_key, timeout=config.timeout, consent_requests=allowed, retries=args.retries
    )
    with probe:
        try:
            account: dict[str, Any] = probe.call("Misc/CurrentAccount", {})
            findings = run_checks(probe, options, sleep=sleep, progress=progress)
        except EtelecomError as error:
            print(f"{parser.prog}: error: {_unreachable(error, target)}", file=err)
            return EXIT_UNREACHABLE
        current = (
            current_settings(config.filter_zone, config.shown_zone, config.client_date_filters) if args.conn_id else {}
        )
        out.write(
            render(
                findings,
                target=target,
                account=str(account.get("name") or account.get("id") or "unknown"),
                requests=probe.requests,
                consent_requests=probe.consent_requests_sent,
                current=current,
            )
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
