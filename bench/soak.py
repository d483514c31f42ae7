"""Fault soak at length (issue 9): the daemon against the hostile fault profile of the CI soak
(429 + Retry-After, 5xx, latency spikes, resets, lost answers, expiring tokens, builder-fee 429)
for ten minutes or more. Prints the figures bench/RESULTS.md records; exits 1 on any failure.

    python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.harness import run_soak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    ap.add_argument("--speed", type=float, default=3600.0, help="simulated seconds per second")
    ap.add_argument("--workdir", type=Path, help="keep the venue state, journal and logs here")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    if args.minutes <= 0:
        ap.error("--minutes must be positive")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="alura-soak-"))
    print(f"soaking for {args.minutes:g} min in {workdir} …", flush=True)
    started = time.monotonic()
    r = run_soak(workdir, args.minutes * 60, speed=args.speed)
    elapsed = time.monotonic() - started
    figures = asdict(r) | {
        "wall_seconds": round(elapsed, 1),
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "command": " ".join(["python", "bench/soak.py", *sys.argv[1:]]),
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print(
        "\n| minutes | ticks | requests at venue | injected faults | duplicates | check problems "
        "| Retry-After violations | unhandled errors in log | exit code |\n"
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|\n"
        f"| {r.seconds / 60:g} | {r.ticks} | {r.requests} "
        f"| {', '.join(f'{k} {v}' for k, v in sorted(r.injected.items()))} "
        f"| {r.check.duplicate_attempts} | {len(r.check.problems)} "
        f"| {len(r.retry_after_violations)} | {len(r.log_problems)} | {r.exit_code} |"
    )
    # low/high: the relation taken on the venue before and after the bot's metrics were scraped
    print("\n| fault | bot metric must equal / lie within | low | bot | high | ok |")
    print("|---|---|---:|---:|---:|---|")
    for t in r.tallies:
        print(
            f"| {t.fault} | {t.relation} | {t.low:g} | {t.bot:g} | {t.high:g} "
            f"| {'yes' if t.ok else 'NO'} |"
        )
    miscounted = [t for t in r.tallies if not t.ok]
    for line in [*r.check.problems, *r.log_problems, *r.retry_after_violations][:20]:
        print("problem:", line)
    passed = (
        r.alive_throughout
        and r.exit_code == 0
        and not r.log_problems
        and not r.check.problems
        and r.check.duplicate_attempts == 0
        and not r.retry_after_violations
        and not miscounted
    )
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
