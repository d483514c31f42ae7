"""Crash trials at length (issue 9): the daemon SIGKILLed at random moments and at named crash
points, many hundreds of times, against a simulator that persists its state and is itself killed
now and then; then the simulator killed and restarted under a running daemon, which must back
off, survive and trade again. Prints the figures bench/RESULTS.md records; exits 1 if any
invariant broke.

    python bench/crash_trials.py --trials 500
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.harness import run_trials, run_venue_outages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=500, help="SIGKILLs of the daemon (default 500)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the kill moments and the venue")
    ap.add_argument(
        "--venue-restart-every", type=int, default=25, help="kill the simulator every N trials"
    )
    ap.add_argument(
        "--venue-outages",
        type=int,
        default=10,
        help="then kill and restart the simulator under a running daemon N times (default 10)",
    )
    ap.add_argument("--workdir", type=Path, help="keep the venue state, journal and logs here")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    if args.trials < 1:
        ap.error("--trials must be at least 1")
    if args.venue_outages < 0:
        ap.error("--venue-outages must be 0 or more")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="alura-crash-"))
    started = time.monotonic()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("crash trials", total=args.trials)

        def progress(n: int, mode: str, result: object, report: object) -> None:
            bar.update(task, advance=1, description=f"crash trials ({mode})")

        stats = run_trials(
            workdir,
            args.trials,
            seed=args.seed,
            venue_restart_every=args.venue_restart_every,
            progress=progress,
        )
        outages_started = time.monotonic()
        outage_task = bar.add_task("venue outages", total=args.venue_outages)
        outages = run_venue_outages(
            workdir / "outages",
            args.venue_outages,
            seed=args.seed,
            progress=lambda n, o: bar.update(outage_task, advance=1),
        )
    trials_s = outages_started - started
    outages_s = time.monotonic() - outages_started
    figures = stats.as_dict() | {
        "seconds": round(trials_s, 1),
        "venue_outages": outages.as_dict() | {"seconds": round(outages_s, 1)},
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "command": " ".join(["python", "bench/crash_trials.py", *sys.argv[1:]]),
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(
        "\n| trials | kills by mode | venue restarts | duplicates | lost intents | orphans "
        "| adopted answers | failed intents | venue sessions | problems | wall time |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {stats.trials} | {', '.join(f'{k} {v}' for k, v in sorted(stats.kills.items()))} "
        f"| {stats.venue_restarts} | {stats.duplicates} | {stats.unresolved_after} "
        f"| {stats.orphans} | {stats.adopted} | {stats.failed_intents} | {stats.venue_sessions} "
        f"| {len(stats.problems)} | {trials_s / 60:.1f} min |"
    )
    o = outages
    rate = o.attempts / o.outage_seconds if o.outage_seconds else 0.0
    recovery = sorted(o.recovery_s)
    median = recovery[len(recovery) // 2] if recovery else float("nan")
    print(
        "\n| venue outages | daemon survived | traded again | outage time | connection attempts "
        "| schedule bound | attempts/s | recovery median / max | problems | wall time |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n"
        f"| {o.outages} | {o.survived} | {o.resumed} | {o.outage_seconds:.0f} s | {o.attempts} "
        f"| {o.bound} | {rate:.1f} | {median:.2f} s / {max(recovery, default=float('nan')):.2f} s "
        f"| {len(o.problems)} | {outages_s / 60:.1f} min |"
    )
    for problem in [*stats.problems, *o.problems][:20]:
        print("problem:", problem)
    print(f"workdir: {workdir}")
    broken = stats.duplicates or stats.unresolved_after or stats.orphans or stats.problems
    return 1 if broken or o.problems or o.outages < args.venue_outages else 0


if __name__ == "__main__":
    raise SystemExit(main())
