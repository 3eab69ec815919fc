"""How long `digitrec` takes to refuse a user error, as a whole process (issue 27).

Times each command ROUNDS times (interleaved, so the machine's load falls on all alike) and
prints one line per case: the median wall time and the slowest, beside `python -c pass`, the
interpreter's own start-up, measured in the same rounds. Exits 1 where a case's median is over
0.5 s or it does not fail with exit code 2 and one `digitrec: error:` line.

Usage: python benchmarks/cli_latency.py [ROUNDS]   (default 7)
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN

LIMIT_S = 0.5
CASES = {
    "predict missing.png": ["predict", "missing.png"],
    "predict notes.txt": ["predict", "notes.txt"],
    "evaluate --model nope": ["evaluate", "--model", "nope"],
}


def _run(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - started, done


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands |= {name: [str(BIN / "digitrec"), *argv] for name, argv in CASES.items()}
    times: dict[str, list[float]] = {name: [] for name in commands}
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "notes.txt").write_text("shopping: milk, eggs\n")
        for _ in range(rounds):
            for name, command in commands.items():
                seconds, done = _run(command, Path(scratch))
                times[name].append(seconds)
                refused = done.returncode == 2 and done.stderr.startswith("digitrec: error: ")
                if name in CASES and not (refused and done.stderr.count("\n") == 1):
                    failed.append(f"{name}: exit {done.returncode}, stderr {done.stderr!r}")
    baseline = statistics.median(times["python -c pass"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        verdict = "" if name not in CASES else "  ok" if median < LIMIT_S else f"  OVER {LIMIT_S} s"
        print(
            f"{name:24s} median {median:.3f} s  max {max(seconds):.3f} s  "
            f"({median - baseline:+.3f} s over python -c pass, {rounds} runs){verdict}"
        )
    for line in failed:
        print(f"not refused as a user error: {line}")
    over = [name for name in CASES if statistics.median(times[name]) >= LIMIT_S]
    return 1 if over or failed else 0


if __name__ == "__main__":
    sys.exit(main())
