"""The ``circulate`` command.

circulate demo                      generate a one-year scheme, run the nightly flow once
circulate run [--input DIR] ...     ingest new exports, build, check, publish, report
circulate generate --out DIR ...    write a synthetic scheme with its ground truth
circulate metrics [--json] ...      circulation and multiplier metrics of the published warehouse
circulate fanout --lake DIR ...     month marts from the Parquet lake on a Dask cluster
circulate review                    what blocked the last run, and the commands that move on
circulate accept --run R --check C --reason TEXT    publish that failure on those files as a warning
circulate set-aside FILE --reason TEXT              move an export out of the inbox, never load it
circulate take-back FILE --reason TEXT              return a set-aside export to the inbox
circulate pull cyclos --base-url URL [--since DAY]  fetch past days' transfers into the inbox
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from circulate.errors import UNEXPECTED_ERROR_EXIT_CODE, CirculateError

if TYPE_CHECKING:
    from circulate.settings import Settings
    from circulate.statement.period import Period

DEMO_TRANSACTIONS = 100_000
DEMO_DAYS = 365
DEMO_SEED = 2012  # the Bristol Pound's launch year


def prepare_prefect_environment(data_dir: Path = Path("data")) -> None:
    """Keep Prefect offline and its state under ``data/`` (must run before importing it)."""
    os.environ.setdefault("PREFECT_HOME", str((data_dir / "prefect").resolve()))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server of `circulate run` takes 10-30 s to start on a busy 2-core box;
    # Prefect's default wait gives up before that and fails the whole night.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _prefect_api() -> Iterator[Callable[[], None]]:
    """A Prefect API for the flow: ``PREFECT_API_URL`` when set, else the server a
    ``circulate serve`` with the same Prefect home runs, else a temporary server.

    Yields a function that returns once the API answers: the temporary server starts in
    the background (about 5 s) while the caller imports Prefect and the flow. It dies
    with this process even when that is killed (see
    :func:`circulate.prefect_server.launch_temporary_server`), and is stopped on the way
    out, also on SIGTERM.
    """
    from circulate.errors import ConfigurationError
    from circulate.prefect_server import healthy, launch_temporary_server, served_api

    prepare_prefect_environment()
    served = (
        None if os.environ.get("PREFECT_API_URL") else served_api(Path(os.environ["PREFECT_HOME"]))
    )
    if served:
        os.environ["PREFECT_API_URL"] = served  # no temporary server: use the one running
        try:
            yield lambda: None
        finally:
            del os.environ["PREFECT_API_URL"]
        return
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        if not healthy(api_url):
            raise ConfigurationError(
                f"PREFECT_API_URL={api_url} does not answer: start that server "
                "(`circulate serve`), or unset PREFECT_API_URL to run with a temporary one."
            )
        yield lambda: None
        return
    server = launch_temporary_server(Path(os.environ["PREFECT_HOME"]) / "temporary-server.log")
    os.environ["PREFECT_API_URL"] = server.api_url  # before Prefect is imported
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        yield server.wait_until_ready
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        del os.environ["PREFECT_API_URL"]


def _run_flow(
    inbox: Path | None,
    warehouse: Path | None,
    reports: Path | None,
    *,
    debug: bool,
    full: bool = False,
) -> str:
    """Run the nightly flow once, holding the run lock from before Prefect starts.

    A second run is refused by the lock at once, before any server starts; the flow
    takes the same lock again inside (it does nothing when this process holds it).
    """
    from circulate import pipeline
    from circulate.settings import Settings
    from circulate.warehouse.lock import run_lock

    settings = Settings().with_paths(inbox=inbox, warehouse=warehouse, reports=reports)
    with run_lock(pipeline.lock_path(settings)), _prefect_api() as wait_for_api:
        # Prefect and the flow are imported while the temporary server starts (5-10 s).
        # Great Expectations is not: validation imports it only for a night with an
        # unexpected row (circulate.validate.suites).
        from flows.nightly import nightly, send_pending_logs

        if not debug:
            from circulate.terminal import quiet_console_logs

            quiet_console_logs()
        wait_for_api()
        try:
            return nightly(
                inbox=str(inbox) if inbox else None,
                warehouse=str(warehouse) if warehouse else None,
                reports=str(reports) if reports else None,
                full=full,
            )
        finally:
            send_pending_logs()


def command_run(args: argparse.Namespace) -> int:
    from circulate.ingest.canonical import require_inbox
    from circulate.settings import Settings

    require_inbox(args.input or Settings().inbox)  # fail before starting Prefect
    started = time.perf_counter()
    report = _run_flow(args.input, args.warehouse, args.reports, debug=args.debug, full=args.full)
    _say(f"nightly run finished in {time.perf_counter() - started:.1f} s")
    print(report)
    return 0


def command_generate(args: argparse.Namespace) -> int:
    from circulate.generate import generate_scheme

    started = time.perf_counter()
    truth = generate_scheme(
        args.out,
        seed=args.seed,
        transactions=args.transactions,
        days=args.days,
        start=args.start,
        timezone=args.timezone,
        scenario=args.scenario,
        progress=_say,
    )
    if args.format != "canonical":
        from circulate.generate.formats import convert_scheme

        convert_scheme(args.out, args.format)
    elapsed = time.perf_counter() - started
    rows = truth.rows
    _say(
        f"wrote {rows:,} transactions over {args.days} days to {args.out} "
        f"({args.scenario} scenario, {args.format} format) in {elapsed:.1f} s "
        f"({rows / max(elapsed, 1e-9):,.0f} rows/s)"
    )
    return 0


def command_ingest(args: argparse.Namespace) -> int:
    from circulate import pipeline
    from circulate.ingest.canonical import require_inbox
    from circulate.ingest.summary import file_lines
    from circulate.settings import Settings

    require_inbox(args.input)
    settings = Settings().with_paths(inbox=args.input, warehouse=args.warehouse)
    started = time.perf_counter()
    summary = pipeline.run_in_process(settings, progress=_say)
    for line in file_lines(summary.files):
        print(line)
    if not summary.files_new:
        _say("nothing new to ingest; the published warehouse is unchanged")
        return 0
    elapsed = time.perf_counter() - started
    _say(f"published {settings.warehouse} in {elapsed:.1f} s")
    return 0


def command_backfill(args: argparse.Namespace) -> int:
    from circulate import pipeline
    from circulate.ingest.canonical import require_inbox
    from circulate.report import render_report
    from circulate.settings import Settings

    settings = Settings().with_paths(
        inbox=args.input, warehouse=args.warehouse, reports=args.reports
    )
    require_inbox(settings.inbox)
    started = time.perf_counter()
    summary = pipeline.run_in_process(
        settings, progress=_say, backfill=(args.from_day, args.to_day)
    )
    report = render_report(
        settings.warehouse,
        settings.reports,
        scheme_name=settings.scheme_name,
        currency_symbol=settings.currency_symbol,
        k_anonymity=settings.k_anonymity,
    )
    _say(
        f"rebuilt {settings.warehouse} from {summary.files_new} file(s), "
        f"{summary.rows_loaded:,} transactions, in {time.perf_counter() - started:.1f} s"
    )
    print(report.index_html)
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from circulate.generate import GroundTruth, generate_scheme
    from circulate.settings import Settings

    started = time.perf_counter()
    settings = Settings()
    inbox = settings.inbox
    start = date.today() - timedelta(days=DEMO_DAYS)
    truth_file = inbox / "ground_truth.json"
    existing = GroundTruth.from_json(truth_file) if truth_file.exists() else None
    if existing is None or existing.transactions != args.transactions:
        _say(f"generating a one-year demo scheme ({args.transactions:,} transactions) in {inbox}")
        generate_scheme(
            inbox,
            seed=DEMO_SEED,
            transactions=args.transactions,
            days=DEMO_DAYS,
            start=start,
            progress=_say,
        )
    else:
        _say(f"using the demo scheme already in {inbox}")
    report = _run_flow(None, None, None, debug=args.debug)
    _say(f"demo finished in {time.perf_counter() - started:.1f} s")
    _say(f"warehouse: {settings.warehouse}")
    _say(f"query it:  uv run duckdb -readonly {settings.warehouse}")
    _say("report (open it in a browser; it works offline):")
    print(report)
    from circulate.statement.cli import demo_statement

    statement = demo_statement(settings, progress=_say)
    _say("statement of the last complete quarter (index.html; statement.pdf beside it):")
    print(statement.index_html)
    return 0


def _statement_period(args: argparse.Namespace) -> Period:
    """The period of ``circulate statement``: --quarter, --from/--to, or the last financial year."""
    from circulate.errors import ConfigurationError
    from circulate.statement.period import Period, financial_year_before, quarter

    try:
        if args.quarter:
            if args.from_day or args.to_day:
                raise ValueError("give --quarter or --from/--to, not both")
            return quarter(args.quarter)
        if args.from_day or args.to_day:
            if not (args.from_day and args.to_day):
                raise ValueError("give both --from and --to (YYYY-MM-DD)")
            return Period(args.from_day, args.to_day)
    except ValueError as error:
        raise ConfigurationError(f"circulate statement: {error}") from None
    return financial_year_before(date.today())


def command_statement(args: argparse.Namespace) -> int:
    from circulate.settings import Settings
    from circulate.statement.cli import make_statement

    settings = Settings().with_paths(warehouse=args.warehouse, reports=args.reports)
    result = make_statement(
        settings,
        _statement_period(args),
        title=args.title,
        print_pdf=not args.no_pdf,
        whatif_amount=args.whatif_amount,
        progress=_say,
    )
    print(result.index_html)
    return 0


def command_whatif(args: argparse.Namespace) -> int:
    from circulate.settings import Settings
    from circulate.statement.cli import whatif_text

    settings = Settings().with_paths(warehouse=args.warehouse)
    print(whatif_text(settings, args.entry, args.amount, args.months, as_json=args.json))
    return 0


def command_serve(args: argparse.Namespace) -> int:
    from circulate.prefect_server import announce_served_api, start_local_server
    from circulate.settings import Settings

    prepare_prefect_environment()
    settings = Settings().with_paths(
        inbox=args.input, warehouse=args.warehouse, reports=args.reports
    )
    server = None
    api_url = args.api_url or os.environ.get("PREFECT_API_URL")
    if not api_url:
        log_file = Path(os.environ["PREFECT_HOME"]) / "server.log"
        _say(f"starting a local Prefect server on 127.0.0.1:{args.port} (log: {log_file})")
        server, api_url = start_local_server(args.port, log_file)
    os.environ["PREFECT_API_URL"] = api_url  # before Prefect is imported below
    # systemd and `kill` stop with SIGTERM: leave through `finally` so the server stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _say(
        f"serving circulate-nightly/nightly on '{args.cron}' ({args.timezone}) via {api_url}; "
        f"UI: {api_url.removesuffix('/api')}; stop with Ctrl-C"
    )
    # `circulate run` with the same Prefect home uses this server instead of starting one.
    announced = announce_served_api(Path(os.environ["PREFECT_HOME"]), api_url)
    try:
        from flows.deploy import serve_nightly

        serve_nightly(
            cron=args.cron,
            timezone=args.timezone,
            inbox=settings.inbox,
            warehouse=settings.warehouse,
            reports=settings.reports,
        )
    finally:
        announced.unlink(missing_ok=True)
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    return 0


def command_query(args: argparse.Namespace) -> int:
    from circulate.analyst import query
    from circulate.settings import Settings

    print(query(args.warehouse or Settings().warehouse, args.sql, args.output))
    return 0


def command_docs(args: argparse.Namespace) -> int:
    from circulate.analyst import data_dictionary, open_published
    from circulate.settings import Settings

    con = open_published(args.warehouse or Settings().warehouse)
    try:
        text = data_dictionary(con)
    finally:
        con.close()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            _say(f"{args.out} is stale: run `circulate docs` and commit the result.")
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    _say(f"wrote {args.out}")
    return 0


def command_status(args: argparse.Namespace) -> int:
    from circulate.analyst import status
    from circulate.pipeline import run_log_path
    from circulate.settings import Settings

    settings = Settings().with_paths(warehouse=args.warehouse)
    print(status(settings.warehouse, run_log_path(settings)))
    return 0


def command_validate(args: argparse.Namespace) -> int:
    from circulate.ingest.adapters import SCHEME_FILE, load_scheme_map
    from circulate.pipeline import new_run_id
    from circulate.settings import Settings
    from circulate.validate.run import validate_published
    from circulate.validate.store import format_table

    settings = Settings().with_paths(inbox=args.input, warehouse=args.warehouse)
    scheme = load_scheme_map(settings.inbox) if settings.inbox.is_dir() else None
    reports = validate_published(
        settings.warehouse,
        run_id=new_run_id(),
        thresholds=settings.validation,
        timezone=settings.timezone,
        all_batches=args.all,
        severities=scheme.validation if scheme else None,
        severities_source=settings.inbox / SCHEME_FILE,
    )
    for report in reports:
        print(report.summary())
        print(format_table(report.results))
    return max((r.exit_code for r in reports), default=0)


def command_metrics(args: argparse.Namespace) -> int:
    import json

    from circulate.analyst import open_published, whole_history_network
    from circulate.metrics.circulation import read_metrics
    from circulate.settings import Settings

    con = open_published(args.warehouse or Settings().warehouse)
    try:
        rows = read_metrics(con, args.period or "all", args.policy)
        if rows and not args.period:
            # The whole history's network figures are as of the end of the latest
            # complete month (network_as_of_day), not of period_end.
            rows[0].update(whole_history_network(con))
    finally:
        con.close()
    if args.json:
        print(json.dumps(rows if args.period else (rows[0] if rows else {}), indent=2))
        return 0
    for row in rows:
        width = max(len(name) for name in row)
        print("\n".join(f"{name:<{width}}  {value}" for name, value in row.items()), end="\n\n")
    return 0


def command_fanout(args: argparse.Namespace) -> int:
    from circulate.lake import parse_month, write_lake
    from circulate.settings import Settings

    since = parse_month(args.since) if args.since else None
    started = time.perf_counter()
    if not args.no_write:
        warehouse = args.warehouse or Settings().warehouse
        written = write_lake(warehouse, args.lake, args.scheme, since=since)
        _say(f"wrote {len(written)} month partition(s) of {args.scheme} from {warehouse}")
    prepare_prefect_environment()
    from flows.fanout import run_fanout

    marts = run_fanout(
        args.lake,
        schemes=[args.scheme],
        since=args.since,
        dask_address=args.dask_address,
        workers=args.workers,
    )
    _say(f"month marts of {args.scheme} computed in {time.perf_counter() - started:.1f} s")
    print("\n".join(marts))
    return 0


def _decision_settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """Settings for review/accept/set-aside/take-back and the options to repeat."""
    from circulate.settings import Settings

    settings = Settings().with_paths(inbox=args.input, warehouse=args.warehouse)
    options = []
    if args.input:
        options += ["--input", str(args.input)]
    if args.warehouse:
        options += ["--warehouse", str(args.warehouse)]
    return settings, options


def command_review(args: argparse.Namespace) -> int:
    from circulate.errors import ValidationFailed
    from circulate.review import review_blocked_run

    settings, options = _decision_settings(args)
    review = review_blocked_run(settings, options)
    print(review.text)
    return ValidationFailed.exit_code if review.blocked else 0


def command_accept(args: argparse.Namespace) -> int:
    from circulate.review import accept, changed_since

    settings, _ = _decision_settings(args)
    decision = accept(settings, run_id=args.run, check=args.check, reason=args.reason, by=args.by)
    print(
        f"{decision.check_name} of run {decision.run_id} {decision.note()}\n"
        + "".join(f"  {f.file_name}  sha256 {f.sha256}\n" for f in decision.files)
        + "The next run (circulate run) publishes this failure on these exact files as a "
        "warning with your reason; a new or changed file failing the check blocks again."
    )
    for note in changed_since(settings, decision.files):
        _say(f"note: {note}")
    return 0


def command_set_aside(args: argparse.Namespace) -> int:
    from circulate.review import set_aside

    settings, _ = _decision_settings(args)
    decision = set_aside(settings, args.file, reason=args.reason, by=args.by)
    [ref] = decision.files
    print(
        f"{ref.file_name} (sha256 {ref.sha256}) {decision.note()}\n"
        f"moved to {decision.moved_to}; no run loads it, also if it arrives again. "
        f'Take it back with: circulate take-back {ref.file_name} --reason "..."\n'
        "The next run goes on without it: circulate run"
    )
    return 0


def command_take_back(args: argparse.Namespace) -> int:
    from circulate.review import take_back

    settings, _ = _decision_settings(args)
    decision = take_back(settings, args.file, reason=args.reason, by=args.by)
    [ref] = decision.files
    print(
        f"{ref.file_name} is back in {settings.inbox}, {decision.note()}\n"
        "The next run loads it like a new file (its checks apply again): circulate run"
    )
    return 0


def command_pull(args: argparse.Namespace) -> int:
    from circulate import pipeline
    from circulate.pull import pull_into_inbox
    from circulate.settings import Settings
    from circulate.warehouse.lock import run_lock

    settings = Settings().with_paths(inbox=args.input, warehouse=args.warehouse)
    # Pulled files must not change while a run ingests them: one holder at a time.
    with run_lock(pipeline.lock_path(settings)):
        result = pull_into_inbox(
            settings, base_url=args.base_url, since=args.since, until=args.until, progress=_say
        )
    for line in result.lines():
        print(line)
    _say(f"the next run ingests them: circulate run --input {settings.inbox}")
    return 0


def _add_pull_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pull = commands.add_parser(
        "pull",
        help="fetch the transfers, users and system accounts of whole past days from the "
        "scheme's platform into the inbox as JSON Lines (token: CIRCULATE_SOURCE_TOKEN_FILE)",
    )
    pull.add_argument("platform", choices=("cyclos",), help="the platform's API")
    pull.add_argument(
        "--base-url",
        help="the platform's root, e.g. https://bristol.cyclos.example (default: base_url "
        "of [source] in the inbox's scheme.toml)",
    )
    pull.add_argument(
        "--since",
        type=date.fromisoformat,
        help="first local day to pull, YYYY-MM-DD (default: where the last pull ended)",
    )
    pull.add_argument(
        "--until",
        type=date.fromisoformat,
        help="last local day to pull, YYYY-MM-DD (default: yesterday)",
    )
    pull.add_argument("--input", type=Path, help="inbox to write into (default data/inbox)")
    pull.add_argument("--warehouse", type=Path, help="published DuckDB file; pulls.jsonl beside")
    pull.set_defaults(handler=command_pull)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circulate",
        description="Nightly evidence that a local currency keeps money circulating locally.",
        epilog="exit codes: 0 done; 1 warnings only (validate) or stale (docs --check); "
        "2 bad input or settings; 3 the night is blocked by a data check (see `circulate "
        "review`); 4 a warehouse assertion failed (a defect in circulate); 5 another run "
        "holds the lock; 70 an unexpected error (a defect; traceback in data/logs/)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show every log line and the traceback of a failure (kept out of the terminal "
        "otherwise; Prefect's logs keep them)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="ingest new exports, build and check the warehouse, publish, render report"
    )
    run.add_argument("--input", type=Path, help="folder of export files (default data/inbox)")
    run.add_argument(
        "--warehouse",
        type=Path,
        help="published DuckDB file (default data/warehouse/circulate.duckdb)",
    )
    run.add_argument("--reports", type=Path, help="folder for reports (default reports/)")
    run.add_argument(
        "--full",
        action="store_true",
        help="recompute every table from the loaded rows, reusing nothing a previous build "
        "stored (also when no new export arrived)",
    )
    run.set_defaults(handler=command_run)

    generate = commands.add_parser("generate", help="write a synthetic scheme with ground truth")
    generate.add_argument("--out", type=Path, required=True, help="folder to write into")
    generate.add_argument("--seed", type=int, default=1, help="random seed (same seed, same files)")
    generate.add_argument(
        "--transactions", type=_positive_int, default=10_000, help="number of ledger rows"
    )
    generate.add_argument("--days", type=_positive_int, default=365, help="length of history")
    generate.add_argument(
        "--start", type=date.fromisoformat, default=date(2025, 1, 1), help="first day (YYYY-MM-DD)"
    )
    generate.add_argument("--timezone", default="Europe/London", help="scheme timezone")
    generate.add_argument(
        "--format",
        choices=("canonical", "sarafu", "cyclos"),
        default="canonical",
        help="export layout to write (sarafu and cyclos add a scheme.toml)",
    )
    generate.add_argument(
        "--scenario",
        choices=("healthy", "declining"),
        default="healthy",
        help=(
            "behaviour over the period: healthy (steady) or declining (over its last "
            "30 %%, a chain takes over spending, leakage climbs every month and members "
            "leave), for testing the report's risk flags"
        ),
    )
    generate.set_defaults(handler=command_generate)

    ingest = commands.add_parser(
        "ingest", help="ingest DIR alone (build, check, publish; no report, no Prefect)"
    )
    ingest.add_argument("input", type=Path, help="folder of export files")
    ingest.add_argument(
        "--warehouse",
        type=Path,
        help="published DuckDB file (default data/warehouse/circulate.duckdb)",
    )
    ingest.set_defaults(handler=command_ingest)

    demo = commands.add_parser(
        "demo", help="generate a one-year scheme into data/inbox, run the nightly flow once"
    )
    demo.add_argument(
        "--transactions",
        type=_positive_int,
        default=DEMO_TRANSACTIONS,
        help=f"size of the demo scheme (default {DEMO_TRANSACTIONS:,})",
    )
    demo.set_defaults(handler=command_demo)

    backfill = commands.add_parser(
        "backfill",
        help="rebuild history from the exports of a date range into a fresh snapshot",
        description=(
            "Rebuild the warehouse from scratch from the input folder's attribute files and "
            "the exports whose file name carries a day from --from to --to (for example "
            "after changing the pseudonym key or a scheme.toml mapping), check it and "
            "publish it in place of the current snapshot."
        ),
    )
    backfill.add_argument(
        "--from", dest="from_day", type=date.fromisoformat, required=True, help="YYYY-MM-DD"
    )
    backfill.add_argument(
        "--to", dest="to_day", type=date.fromisoformat, required=True, help="YYYY-MM-DD"
    )
    backfill.add_argument("--input", type=Path, help="folder of export files (default data/inbox)")
    backfill.add_argument("--warehouse", type=Path, help="published DuckDB file")
    backfill.add_argument("--reports", type=Path, help="folder for reports (default reports/)")
    backfill.set_defaults(handler=command_backfill)

    serve = commands.add_parser(
        "serve", help="serve the nightly run on a schedule from a (local) Prefect server"
    )
    serve.add_argument("--cron", default="0 2 * * *", help="schedule (default 02:00 daily)")
    serve.add_argument("--timezone", default="Europe/London", help="timezone of the schedule")
    serve.add_argument("--input", type=Path, help="folder of export files (default data/inbox)")
    serve.add_argument("--warehouse", type=Path, help="published DuckDB file")
    serve.add_argument("--reports", type=Path, help="folder for reports (default reports/)")
    serve.add_argument(
        "--api-url", help="an existing Prefect API (default: PREFECT_API_URL, else start one)"
    )
    serve.add_argument("--port", type=int, default=4200, help="port of the local server it starts")
    serve.set_defaults(handler=command_serve)

    query = commands.add_parser(
        "query", help="run a read-only SQL query on the published warehouse"
    )
    query.add_argument("sql", help='for example "from marts.monthly_circulation"')
    query.add_argument("--warehouse", type=Path, help="published DuckDB file")
    formats = query.add_mutually_exclusive_group()
    formats.add_argument("--csv", dest="output", action="store_const", const="csv")
    formats.add_argument("--json", dest="output", action="store_const", const="json")
    query.set_defaults(handler=command_query, output="table")

    docs = commands.add_parser(
        "docs", help="write the data dictionary (docs/data-dictionary.md) from the warehouse"
    )
    docs.add_argument("--warehouse", type=Path, help="published DuckDB file")
    docs.add_argument("--out", type=Path, default=Path("docs/data-dictionary.md"))
    docs.add_argument(
        "--check", action="store_true", help="exit 1 when the file differs instead of writing"
    )
    docs.set_defaults(handler=command_docs)

    status = commands.add_parser(
        "status", help="recent runs, the published snapshot's age and row counts"
    )
    status.add_argument("--warehouse", type=Path, help="published DuckDB file")
    status.set_defaults(handler=command_status)

    validate = commands.add_parser(
        "validate",
        help="re-run the data checks on the published warehouse (exit 0 clean, 1 warnings, "
        "2 critical failures)",
    )
    validate.add_argument("--warehouse", type=Path, help="published DuckDB file")
    validate.add_argument(
        "--input",
        type=Path,
        help="folder of export files whose scheme.toml [validation] sets severities "
        "(default data/inbox)",
    )
    validate.add_argument(
        "--all", action="store_true", help="check every batch, not only the latest"
    )
    validate.set_defaults(handler=command_validate)

    fanout = commands.add_parser(
        "fanout",
        help="write the warehouse into the Parquet lake and compute its month marts on Dask",
        description=(
            "Write one scheme of the published warehouse into the hive-partitioned lake "
            "(scheme / month), then compute the month marts with one Dask task per month "
            "on an existing cluster (--dask-address or CIRCULATE_DASK_ADDRESS) or a local "
            "one; see docs/scaling.md."
        ),
    )
    fanout.add_argument("--lake", type=Path, required=True, help="the lake's root folder")
    fanout.add_argument("--scheme", required=True, help="scheme name in the lake, e.g. bristol")
    fanout.add_argument("--warehouse", type=Path, help="published DuckDB file to write from")
    fanout.add_argument("--since", help="recompute months from YYYY-MM on (default: all)")
    fanout.add_argument("--dask-address", help="scheduler of an existing Dask cluster")
    fanout.add_argument(
        "--workers", type=_positive_int, default=2, help="processes of a local cluster"
    )
    fanout.add_argument(
        "--no-write", action="store_true", help="use the lake as it is (skip writing it)"
    )
    fanout.set_defaults(handler=command_fanout)

    metrics = commands.add_parser(
        "metrics",
        help="circulation, multiplier and holding metrics from the published warehouse",
    )
    metrics.add_argument("--warehouse", type=Path, help="published DuckDB file")
    metrics.add_argument("--json", action="store_true", help="print JSON")
    metrics.add_argument(
        "--period",
        choices=("day", "week", "month"),
        help="one entry per period (a JSON list) instead of the whole history (which "
        "adds the member network's whole-history figures, as of network_as_of_day: the "
        "end of the latest complete month)",
    )
    metrics.add_argument(
        "--policy",
        choices=("fifo", "lifo"),
        default="fifo",
        help="order the traced figures follow money in: fifo = the published mart; lifo "
        "replays the published ledger newest lot first, read-only (slower)",
    )
    metrics.set_defaults(handler=command_metrics)

    _add_decision_commands(commands)
    _add_pull_command(commands)
    _add_statement_commands(commands)
    return parser


def _add_statement_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``statement`` and ``whatif``: fixed-period accounts and projections for funders."""
    statement = commands.add_parser(
        "statement",
        help="a period statement a funder can cite: reports/statements/<from>_<to>/ with "
        "index.html, PDF, CSVs and manifest.json",
        description=(
            "Render the statement of a period from the published warehouse (default: the "
            "last complete UK financial year, 1 April to 31 March). Rendering again with "
            "unchanged data changes nothing; when data inside the period changed, a new "
            "version is written beside the old one, listing the figures that moved."
        ),
    )
    statement.add_argument("--from", dest="from_day", type=date.fromisoformat, help="YYYY-MM-DD")
    statement.add_argument("--to", dest="to_day", type=date.fromisoformat, help="YYYY-MM-DD")
    statement.add_argument("--quarter", help="a calendar quarter, e.g. 2026Q3 (July to September)")
    statement.add_argument("--title", help="page title (default: scheme name and period)")
    statement.add_argument("--warehouse", type=Path, help="published DuckDB file")
    statement.add_argument("--reports", type=Path, help="folder for reports (default reports/)")
    statement.add_argument(
        "--whatif-amount",
        type=_positive_int,
        default=10_000,
        help="amount the statement's what-if section projects at each entry point (default 10,000)",
    )
    statement.add_argument(
        "--no-pdf", action="store_true", help="skip printing statement.pdf (needs Chromium)"
    )
    statement.set_defaults(handler=command_statement)

    whatif = commands.add_parser(
        "whatif",
        help="projected local trade from N entering the currency at an entry point, with its "
        "interval and back-test error",
    )
    whatif.add_argument(
        "--entry", required=True, choices=("council", "anchor", "business", "resident")
    )
    whatif.add_argument("--amount", required=True, type=_positive_int, help="units of currency")
    whatif.add_argument(
        "--months",
        type=_positive_int,
        default=12,
        help="complete months of flows the projection learns from (default 12)",
    )
    whatif.add_argument("--warehouse", type=Path, help="published DuckDB file")
    whatif.add_argument("--json", action="store_true", help="print JSON")
    whatif.set_defaults(handler=command_whatif)


def _decision_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--input", type=Path, help="folder of export files (default data/inbox)")
    command.add_argument("--warehouse", type=Path, help="published DuckDB file")


def _add_decision_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``review``, ``accept``, ``set-aside`` and ``take-back``: the way out of a blocked night."""
    review = commands.add_parser(
        "review",
        help="what blocked the last run and the commands that move on (exit 3 when blocked)",
    )
    _decision_options(review)
    review.set_defaults(handler=command_review)

    accept = commands.add_parser(
        "accept",
        help="accept a failed check on the blocked run's exact files: the next run publishes "
        "it as a warning",
    )
    accept.add_argument("--run", required=True, help="the blocked run (circulate review)")
    accept.add_argument(
        "--check", required=True, help="the failed check, e.g. no_conflicting_resends"
    )
    accept.add_argument("--reason", required=True, help="why, kept in audit.decisions")
    accept.add_argument("--by", help="who decides (default: the OS user)")
    _decision_options(accept)
    accept.set_defaults(handler=command_accept)

    set_aside = commands.add_parser(
        "set-aside",
        help="move an export out of the inbox (to data/set-aside/); no run loads it",
    )
    set_aside.add_argument("file", help="the export, relative to the inbox (exports/….csv)")
    set_aside.add_argument("--reason", required=True, help="why, kept in audit.decisions")
    set_aside.add_argument("--by", help="who decides (default: the OS user)")
    _decision_options(set_aside)
    set_aside.set_defaults(handler=command_set_aside)

    take_back = commands.add_parser(
        "take-back", help="return a set-aside export to the inbox; the next run loads it"
    )
    take_back.add_argument("file", help="the set-aside export's name in the inbox")
    take_back.add_argument("--reason", required=True, help="why, kept in audit.decisions")
    take_back.add_argument("--by", help="who decides (default: the OS user)")
    _decision_options(take_back)
    take_back.set_defaults(handler=command_take_back)


def _write_traceback(error: BaseException) -> Path:
    """Keep an unexpected error's traceback in a file the message can point to."""
    import traceback
    from datetime import UTC, datetime

    folder = Path(os.environ.get("CIRCULATE_LOG_DIR", "data/logs"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"error-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}.txt"
    path.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    return path


def _forget_tracebacks(error: BaseException | None) -> None:
    """Drop the frames a handled error keeps alive (Prefect keeps the error in its states).

    Those frames hold DuckDB connections and results; left for Python's exit, DuckDB's
    bindings report each one as a leak ("nanobind: leaked …") on the terminal.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CirculateError as error:
        if args.debug:
            raise
        _say(f"circulate: {error}")
        _forget_tracebacks(error)
        return error.exit_code
    except Exception as error:
        if args.debug:
            raise
        path = _write_traceback(error)
        _say(
            f"circulate: unexpected {type(error).__name__}: {error}\n"
            f"This is a defect in circulate, not in your data; the published warehouse is "
            f"unchanged. The traceback is in {path} (or run again with --debug); please "
            "report it with that file."
        )
        _forget_tracebacks(error)
        return UNEXPECTED_ERROR_EXIT_CODE
    finally:
        gc.collect()


def console_main() -> NoReturn:
    """The ``circulate`` command: :func:`main`, its exit handlers, then the exit itself.

    Tearing the interpreter down after a night (every module and object of Prefect,
    numba, Polars, DuckDB) took about 0.8 s of a 100 k-transaction night run through a
    Prefect server. Nothing is left to write by then: :func:`main` has closed its
    warehouse connections, and the exit handlers, where Prefect flushes its logs, run
    first; the operating system frees the rest and the run lock.
    """
    code = main()
    # The handlers a normal exit would run (atexit has no public way to run them early).
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
