"""Unpuzzle benchmarks: ``make bench`` runs ``.venv/bin/python bench/run.py``.

Phases (``--only`` picks some): ``gateway`` (GET /me through nginx vs. direct),
``signin`` (production argon2 cost, direct), ``catalog`` (seeded catalog, cached and
uncached, through the gateway; one profile), ``purchase`` (webhook accepted → enrollment
visible; webhook intake), ``upload`` (chunked upload through the gateway vs. straight to
S3), ``tutor`` (first streamed byte of an SSE answer; retrieval over 10,000 passages),
``mixed`` (browse, search, detail, enroll, progress and AI usage at once, through the
gateway: req/s, p50/p99 per route, errors, peak memory of every process), ``events``
(commit → consumer latency, in-process), ``analytics`` (ingest rate, report latency,
in-process). Progress goes to stderr as JSON lines; the summary table to stdout; the
results replace this date's section of bench/RESULTS.md. See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (bench/run.py): import the bench package from the repository root,
# and keep bench/ itself off the path so its modules never shadow top-level packages.
_REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO / "bench"]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import traceback  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

from bench import (  # noqa: E402
    analytics,
    catalog,
    event_latency,
    gateway_overhead,
    loadgen,
    machine,
    mixed,
    procmem,
    purchase,
    report,
    signin,
    tutor,
    upload,
)
from bench.accounts import sign_up  # noqa: E402
from bench.progress import configure_library_logging, log, warn  # noqa: E402
from bench.stack import Stack, StackError, external_stack, start_devstack  # noqa: E402

PHASES = (
    "gateway",
    "signin",
    "catalog",
    "purchase",
    "upload",
    "tutor",
    "mixed",
    "events",
    "analytics",
)
#: Phases that need the dev stack (the tutor's retrieval part runs after it stopped).
STACK_PHASES = ("gateway", "signin", "catalog", "purchase", "upload", "tutor", "mixed")
SERVICE_PHASES = ("catalog", "purchase", "upload", "tutor", "mixed")
RESULTS = _REPO / "bench" / "RESULTS.md"
PROFILES = _REPO / "bench" / "out" / "profiles"
ADMIN_URL = os.environ.get(
    "UNPUZZLE_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("UNPUZZLE_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("UNPUZZLE_REDIS_URL", "redis://127.0.0.1:6379/0")


def _phases(value: str) -> list[str]:
    chosen = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PHASES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(PHASES)} (comma-separated)")
    return chosen


def _ints(value: str) -> list[int]:
    try:
        numbers = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("positive integers, e.g. 1,16")
    return numbers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Environment: BENCH_GATEWAY_URL and BENCH_AUTH_URL use a running stack instead "
            "of starting one; UNPUZZLE_ADMIN_DATABASE_URL, UNPUZZLE_NATS_URL, "
            "UNPUZZLE_REDIS_URL locate the infrastructure (localhost defaults)."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds per phase")
    parser.add_argument("--only", type=_phases, help=f"{', '.join(PHASES)} (comma-separated)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "asyncio"),
        default="auto",
        help="HTTP load generator (auto: wrk when installed)",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    g = parser.add_argument_group("gateway")
    g.add_argument("--connections", type=_ints, help="connection counts (default 1,16)")
    g.add_argument("--duration", type=float, help="seconds per run (default 8; quick 2)")
    g.add_argument("--rounds", type=int, help="rounds per side (default 2; quick 1)")
    g.add_argument("--warmup", type=float, help="warm-up seconds per side (default 2; quick 1)")
    g.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the gateway's /healthz and rejected-token runs",
    )
    s = parser.add_argument_group("signin")
    s.add_argument("--signin-connections", type=int, default=4, help="default 4")
    s.add_argument("--signin-duration", type=float, help="seconds (default 20; quick 3)")
    s.add_argument("--signin-accounts", type=int, default=4, help="default 4")
    s.add_argument("--hash-samples", type=int, help="hashes timed alone (default 5; quick 2)")
    e = parser.add_argument_group("events")
    e.add_argument("--events", type=int, help="idle events, one at a time (default 500; quick 50)")
    e.add_argument("--events-budget", type=float, help="max seconds of the idle run (default 40)")
    e.add_argument("--events-gap-ms", type=float, default=10.0, help="pause between idle events")
    e.add_argument("--burst", type=int, help="concurrent transactions (default 200; quick 50)")
    e.add_argument("--consumer-batch", type=int, help="EventConsumer batch_size (its default)")
    e.add_argument(
        "--consumer-fetch-timeout", type=float, help="EventConsumer fetch_timeout (its default)"
    )
    c = parser.add_argument_group("catalog")
    c.add_argument("--catalog-courses", type=int, help="courses seeded (default 2000; quick 200)")
    c.add_argument("--catalog-sections", type=int, default=5, help="sections per course (5)")
    c.add_argument("--catalog-lessons", type=int, default=4, help="lessons per section (4)")
    c.add_argument("--catalog-enrollments", type=int, help="default 50000; quick 5000")
    c.add_argument("--catalog-reviews", type=int, help="default 20000; quick 2000")
    c.add_argument("--catalog-connections", type=int, default=16, help="default 16")
    c.add_argument(
        "--courses-replicas",
        type=int,
        default=2,
        help="courses API processes in the stack started here, behind the gateway (default 2:"
        " one per core, as replicas would be on a 2-core node)",
    )
    c.add_argument("--catalog-duration", type=float, help="seconds per run (default 6; quick 1)")
    c.add_argument("--catalog-warmup", type=float, help="warm-up seconds (default 1; quick 0)")
    c.add_argument(
        "--profile-seconds",
        type=int,
        help="py-spy seconds per profile (default 5; quick 1; 0: none)",
    )
    c.add_argument("--profile-dir", type=Path, default=PROFILES, help="where profiles go")
    c.add_argument(
        "--profiler",
        choices=("auto", "py-spy", "cprofile"),
        default="auto",
        help="auto: py-spy on the courses API when installed, else cProfile in-process",
    )
    pu = parser.add_argument_group("purchase")
    pu.add_argument("--purchases", type=int, help="timed purchases (default 500; quick 30)")
    pu.add_argument("--purchases-per-student", type=int, default=100, help="default 100")
    pu.add_argument("--webhook-connections", type=int, default=8, help="default 8")
    pu.add_argument("--webhook-duration", type=float, help="seconds per run (default 5; quick 1)")
    up = parser.add_argument_group("upload")
    up.add_argument("--upload-mb", type=int, help="file size in MB (default 200; quick 40)")
    up.add_argument("--upload-parallel", type=int, default=4, help="chunks in flight (4)")
    t = parser.add_argument_group("tutor")
    t.add_argument("--tutor-messages", type=int, help="streamed answers (default 200; quick 30)")
    t.add_argument("--passages", type=int, default=10_000, help="passages indexed (10000)")
    t.add_argument("--retrieval-queries", type=int, help="per layout (default 500; quick 100)")
    t.add_argument(
        "--ai-database",
        default="unpuzzle_bench_ai",
        help="database whose ai schema the retrieval part re-creates",
    )
    m = parser.add_argument_group("mixed")
    m.add_argument("--mixed-duration", type=float, help="seconds measured (default 30; quick 5)")
    m.add_argument("--mixed-users", type=int, help="virtual users (default 32; quick 8)")
    m.add_argument("--mixed-students", type=int, help="students signed up (default 64; quick 16)")
    m.add_argument("--mixed-warmup", type=float, help="warm-up seconds (default 3; quick 0)")
    a = parser.add_argument_group("analytics")
    a.add_argument(
        "--analytics-events", type=int, help="events ingested (default 10000; quick 2000)"
    )
    a.add_argument("--analytics-requests", type=int, help="per report (default 200; quick 30)")
    a.add_argument(
        "--analytics-courses", type=int, help="courses with a year of data (20; quick 5)"
    )
    a.add_argument(
        "--analytics-database",
        default="unpuzzle_bench_analytics",
        help="database whose analytics schema the analytics phase re-creates",
    )
    parser.add_argument(
        "--database", default="unpuzzle_bench", help="database of the dev stack started here"
    )
    parser.add_argument(
        "--events-database",
        default="unpuzzle_bench_events",
        help="database whose auth schema the events phase re-creates",
    )
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file to update")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "connections": [1, 16],
        "duration": 2.0 if quick else 8.0,
        "rounds": 1 if quick else 2,
        "warmup": 1.0 if quick else 2.0,
        "signin_duration": 3.0 if quick else 20.0,
        "hash_samples": 2 if quick else 5,
        "events": 50 if quick else 500,
        "events_budget": 10.0 if quick else 40.0,
        "burst": 50 if quick else 200,
        "catalog_courses": 200 if quick else 2000,
        "catalog_enrollments": 5000 if quick else 50_000,
        "catalog_reviews": 2000 if quick else 20_000,
        "catalog_duration": 1.0 if quick else 6.0,
        "catalog_warmup": 0.0 if quick else 1.0,
        "profile_seconds": 1 if quick else 5,
        "purchases": 30 if quick else 500,
        "webhook_duration": 1.0 if quick else 5.0,
        "upload_mb": 40 if quick else 200,
        "tutor_messages": 30 if quick else 200,
        "retrieval_queries": 100 if quick else 500,
        "mixed_duration": 5.0 if quick else 30.0,
        "mixed_users": 8 if quick else 32,
        "mixed_students": 16 if quick else 64,
        "mixed_warmup": 0.0 if quick else 3.0,
        "analytics_events": 2000 if quick else 10_000,
        "analytics_requests": 30 if quick else 200,
        "analytics_courses": 5 if quick else 20,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def run_kind(args: argparse.Namespace, phases: list[str]) -> str:
    base = "quick smoke run" if args.quick else "full run"
    if len(phases) < len(PHASES):
        base = ("quick smoke run" if args.quick else "partial run") + f" ({', '.join(phases)})"
    return base


async def http_phases(
    args: argparse.Namespace, phases: list[str], rep: report.RunReport, tool: str
) -> list[str]:
    """The phases that need the stack; its memory is read before it stops. Returns the
    service phases that failed (a failure of gateway or signin raises)."""
    stack: Stack | None = None
    try:
        stack = external_stack()
        if stack is None:
            replicas = f"courses={args.courses_replicas}" if args.courses_replicas > 1 else ""
            stack = await start_devstack(args.database, replicas=replicas)
        rep.stack = stack.describe()
        if stack.started_here:
            rep.notes.append(
                "The stack started here has the gateway's per-address and per-user rate "
                "limits raised (GATEWAY_RATE_LIMIT_ADDRESS/USER=100000r/s): the load measures "
                "proxying, not the 429 page; limit_req still runs on every request."
            )
        log("stack", rep.stack, gateway=stack.gateway_url, auth=stack.auth_url)
        if "signin" in phases:
            log("signin", "timing argon2 alone in a separate process")
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                rep.argon2 = await asyncio.get_running_loop().run_in_executor(
                    pool, signin.measure_hash, args.hash_samples
                )
        if "gateway" in phases:
            import httpx

            async with httpx.AsyncClient(timeout=30.0) as client:
                account = await sign_up(client, stack.auth_url, "gateway")
            rep.gateway = await gateway_overhead.run(
                tool=tool,
                gateway_url=stack.gateway_url,
                auth_url=stack.auth_url,
                account=account,
                connections=args.connections,
                duration=args.duration,
                rounds=args.rounds,
                warmup=args.warmup,
                wrk_threads=args.wrk_threads,
            )
            if not args.no_breakdown:
                rep.gateway_breakdown = await gateway_overhead.breakdown(
                    tool=tool,
                    gateway_url=stack.gateway_url,
                    account=account,
                    connections=min(args.connections),
                    duration=args.duration,
                    wrk_threads=args.wrk_threads,
                )
        if "signin" in phases:
            accounts = await signin.make_accounts(stack.auth_url, args.signin_accounts)
            rep.signin_accounts = len(accounts)
            rep.signin = await signin.run(
                tool=tool,
                auth_url=stack.auth_url,
                accounts=accounts,
                connections=args.signin_connections,
                duration=args.signin_duration,
                wrk_threads=args.wrk_threads,
            )
        if "gateway" in phases or "signin" in phases:
            # Read before the service phases reset the peaks of the processes they use.
            rep.memory = procmem.stack_memory(
                gateway_port=stack.gateway_port,
                auth_port=stack.auth_port,
                stack_pid=stack.process.pid if stack.process else None,
            )
            log("memory", "stack processes", processes=[m.as_dict() for m in rep.memory])
        return await service_phases(args, phases, rep, tool, stack)
    finally:
        if stack is not None:
            await stack.stop()


async def service_phases(
    args: argparse.Namespace,
    phases: list[str],
    rep: report.RunReport,
    tool: str,
    stack: Stack,
) -> list[str]:
    """The catalog, purchase, upload, tutor and mixed phases, each on its own (one failing
    does not stop the others); returns the ones that failed."""
    failed: list[str] = []
    for name in [p for p in SERVICE_PHASES if p in phases]:
        log(name, f"phase {name} starting")
        try:
            if name == "catalog":
                result = await catalog.run(
                    tool=tool,
                    stack=stack,
                    admin_url=ADMIN_URL,
                    nats_url=NATS_URL,
                    redis_url=REDIS_URL,
                    opts=catalog.CatalogOptions(
                        courses=args.catalog_courses,
                        sections=args.catalog_sections,
                        lessons=args.catalog_lessons,
                        enrollments=args.catalog_enrollments,
                        reviews=args.catalog_reviews,
                        connections=args.catalog_connections,
                        duration=args.catalog_duration,
                        warmup=args.catalog_warmup,
                        profile_seconds=args.profile_seconds,
                        profile_dir=args.profile_dir,
                        profiler=args.profiler,
                    ),
                    wrk_threads=args.wrk_threads,
                )
            elif name == "purchase":
                result = await purchase.run(
                    tool=tool,
                    stack=stack,
                    admin_url=ADMIN_URL,
                    nats_url=NATS_URL,
                    purchases=args.purchases,
                    per_student=args.purchases_per_student,
                    connections=args.webhook_connections,
                    duration=args.webhook_duration,
                    wrk_threads=args.wrk_threads,
                    quick=args.quick,
                )
            elif name == "upload":
                result = await upload.run(
                    stack=stack, megabytes=args.upload_mb, parallel=args.upload_parallel
                )
            elif name == "tutor":
                result = await tutor.run_stream(
                    stack=stack,
                    admin_url=ADMIN_URL,
                    nats_url=NATS_URL,
                    messages=args.tutor_messages,
                    quick=args.quick,
                )
            else:
                result = await mixed.run(
                    stack=stack,
                    admin_url=ADMIN_URL,
                    nats_url=NATS_URL,
                    redis_url=REDIS_URL,
                    opts=mixed.MixedOptions(
                        users=args.mixed_users,
                        duration=args.mixed_duration,
                        warmup=args.mixed_warmup,
                        students=args.mixed_students,
                        courses=args.catalog_courses,
                        sections=args.catalog_sections,
                        lessons=args.catalog_lessons,
                        enrollments=args.catalog_enrollments,
                        reviews=args.catalog_reviews,
                    ),
                )
            rep.phases.append(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            warn(name, "phase failed", error=repr(exc), traceback=traceback.format_exc())
            rep.notes.append(f"{name} failed: {exc!r}"[:600])
            failed.append(name)
    return failed


def _stop_on_signals() -> None:
    """SIGINT or SIGTERM cancel the run, so the stack it started is stopped on the way out."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _cancel, task, sig)


def _cancel(task: asyncio.Task[object] | None, sig: signal.Signals) -> None:
    warn("done", f"{sig.name}: stopping (the stack is stopped on the way out)")
    if task is not None:
        task.cancel()


async def amain(args: argparse.Namespace) -> int:
    configure_library_logging()
    _stop_on_signals()
    phases = args.only or list(PHASES)
    log("start", "benchmarks starting", phases=phases, quick=args.quick)
    facts = await machine.facts(admin_url=ADMIN_URL, nats_url=NATS_URL, redis_url=REDIS_URL)
    log("start", "machine", **facts)
    rep = report.RunReport(kind=run_kind(args, phases), facts=facts)
    failed: list[str] = []

    http = [p for p in phases if p in STACK_PHASES]
    if http:
        tool = loadgen.choose_tool(args.loadgen)
        rep.tool = tool
        rep.tool_detail = (
            f"wrk {facts.get('wrk') or ''} ({args.wrk_threads} thread(s), closed loop)"
            if tool == "wrk"
            else "asyncio raw-socket client in the bench driver "
            + ("(--loadgen asyncio)" if args.loadgen == "asyncio" else "(wrk not installed)")
        )
        if "mixed" in http:
            own = (
                "the mixed phase: its own closed-loop asyncio client in the bench driver "
                "(one keep-alive connection per virtual user)"
            )
            rep.tool_detail = own if http == ["mixed"] else f"{rep.tool_detail}; {own}"
        log("start", f"load generator: {rep.tool_detail}")
        if "gateway" in phases:
            rep.settings.update(
                {
                    "gateway connections": "/".join(map(str, args.connections)),
                    "gateway seconds per run": f"{args.duration:g}",
                    "rounds": args.rounds,
                }
            )
        if "signin" in phases:
            rep.settings.update(
                {
                    "signin connections": args.signin_connections,
                    "signin seconds": f"{args.signin_duration:g}",
                }
            )
        try:
            failed += await http_phases(args, phases, rep, tool)
        except StackError as exc:
            warn("stack", f"stack unavailable; skipped {', '.join(http)}", error=str(exc))
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = " / ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)
            rep.notes.append(f"{', '.join(http)} skipped: {reason[:400]}")
            failed += http
        except Exception as exc:
            warn("http", "phase failed", error=repr(exc), traceback=traceback.format_exc())
            rep.notes.append(f"{', '.join(http)} failed: {exc!r}")
            failed += http

    if "events" in phases:
        rep.settings.update({"idle events": args.events, "burst": args.burst})
    if "catalog" in phases:
        rep.settings.update(
            {
                "catalog courses": args.catalog_courses,
                "catalog connections": args.catalog_connections,
                "catalog seconds per run": f"{args.catalog_duration:g}",
            }
        )
    if "purchase" in phases:
        rep.settings.update(
            {"purchases": args.purchases, "webhook connections": args.webhook_connections}
        )
    if "upload" in phases:
        rep.settings["upload MB"] = args.upload_mb
    if "tutor" in phases:
        rep.settings.update({"tutor messages": args.tutor_messages, "passages": args.passages})
    if "mixed" in phases:
        rep.settings.update(
            {
                "mixed users": args.mixed_users,
                "mixed seconds": f"{args.mixed_duration:g}",
                "mixed students": args.mixed_students,
            }
        )
    if "analytics" in phases:
        rep.settings["analytics events"] = args.analytics_events
    if "events" in phases:
        try:
            rep.events = await event_latency.run(
                admin_url=ADMIN_URL,
                nats_url=NATS_URL,
                database=args.events_database,
                idle_events=args.events,
                idle_budget=args.events_budget,
                idle_gap=args.events_gap_ms / 1000,
                burst=args.burst,
                consumer_batch=args.consumer_batch,
                consumer_fetch_timeout=args.consumer_fetch_timeout,
            )
        except Exception as exc:
            warn("events", "phase failed", error=repr(exc), traceback=traceback.format_exc())
            rep.notes.append(f"events failed: {exc!r}")
            failed.append("events")

    if "tutor" in phases:
        tutor_result = next((p for p in rep.phases if p.name == "tutor"), None)
        if tutor_result is None:  # the streaming part could not run: retrieval still can
            tutor_result = tutor.new_result()
            rep.phases.append(tutor_result)
        try:
            await tutor.run_retrieval(
                tutor_result,
                admin_url=ADMIN_URL,
                database=args.ai_database,
                passages=args.passages,
                queries=args.retrieval_queries,
            )
        except Exception as exc:
            warn("tutor", "retrieval failed", error=repr(exc), traceback=traceback.format_exc())
            rep.notes.append(f"tutor retrieval failed: {exc!r}"[:600])
            failed.append("tutor")

    if "analytics" in phases:
        try:
            rep.phases.append(
                await analytics.run(
                    admin_url=ADMIN_URL,
                    nats_url=NATS_URL,
                    redis_url=REDIS_URL,
                    database=args.analytics_database,
                    events=args.analytics_events,
                    requests=args.analytics_requests,
                    courses=args.analytics_courses,
                )
            )
        except Exception as exc:
            warn("analytics", "phase failed", error=repr(exc), traceback=traceback.format_exc())
            rep.notes.append(f"analytics failed: {exc!r}"[:600])
            failed.append("analytics")

    rep.memory.append(procmem.self_memory())
    if args.quick:
        rep.notes.append("Smoke run: a few seconds per phase; the numbers are not measurements.")
    sys.stdout.write(report.text(rep))
    sys.stdout.flush()
    if args.no_write:
        pass
    elif failed:
        warn("done", f"{args.results} left as it was: {', '.join(failed)} did not run")
    else:
        report.write_results(args.results, rep)
        log("done", f"results written to {args.results}")
    if args.json:
        args.json.write_text(json.dumps(report.nan_free(raw(rep)), indent=2, default=str))
    log("done", "benchmarks finished", failed=failed)
    return 1 if failed else 0


def raw(rep: report.RunReport) -> dict[str, object]:
    return {
        "kind": rep.kind,
        "facts": rep.facts,
        "tool": rep.tool_detail,
        "stack": rep.stack,
        "settings": rep.settings,
        "gateway": [c.as_dict() for c in rep.gateway],
        "gateway_breakdown": [x.as_dict() for x in rep.gateway_breakdown],
        "signin": rep.signin.as_dict() if rep.signin else None,
        "argon2": rep.argon2.as_dict() if rep.argon2 else None,
        "events": rep.events.as_dict() if rep.events else None,
        "phases": {p.name: p.as_dict() for p in rep.phases},
        "memory": [m.as_dict() for m in rep.memory],
        "notes": rep.notes,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        warn("done", "interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
