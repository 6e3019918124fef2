#!/usr/bin/env python3
"""Runs the Swift Testing suite and makes a hung run end, saying which tests hung.

`make test` runs the test binary through this script instead of `swift test`. The script
reads Swift Testing's event stream (`--event-stream-output-path`) as the run goes and knows
which tests are running. When no test has ended for `--stall` seconds, or the whole run
passes `--limit`, it prints the tests still running (with how long each has run), sends
the test process SIGABRT so the Swift runtime prints every thread's backtrace, and fails.
Without it a hung test held CI for its whole 90 minutes and printed nothing about itself.

At the end it prints the slowest tests, so a run that creeps towards CI's budget shows
where the time went. Standard library only: it runs before any virtual environment exists.

It also bounds how many tests run at once (--width, 16): with no bound, every suite of a
run started together and starved the event-loop threads for over 10 s, and handshakes
with 5 s timeouts failed.

    Tools/test/run-tests.py [--stall S] [--limit S] [--width N] [--slowest N] BINARY [ARGS...]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stall", type=float, default=600, help="seconds without a test ending that count as a hang (600)")
    parser.add_argument("--limit", type=float, default=3000, help="seconds the whole run may take (3000)")
    parser.add_argument("--width", type=int, default=16,
                        help="how many tests may run at once (16; 0: no limit). All of them at once starved "
                             "the loop threads of both cores for over 10 s at the start of a run, past the "
                             "5 s handshake timeouts of the daemons the tests start")
    parser.add_argument("--slowest", type=int, default=8, help="how many of the slowest tests to list at the end (8)")
    parser.add_argument("binary", help="the test binary, e.g. .build/debug/ParleyPackageTests.xctest")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the test binary (e.g. --filter NAME)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="parley-tests-") as scratch:
        events_path = os.path.join(scratch, "events.jsonl")
        command = [
            options.binary, "--testing-library", "swift-testing",
            "--event-stream-output-path", events_path, "--event-stream-version", "0",
        ] + (["--experimental-maximum-parallelization-width", str(options.width)] if options.width > 0 else []) + options.args
        started = time.monotonic()
        child = subprocess.Popen(command, start_new_session=True)
        running: dict[str, float] = {}  # test or test case -> when it started (monotonic)
        durations: list[tuple[float, str]] = []
        last_end = started
        position = 0
        pending = b""
        hung = None
        while True:
            ended = child.poll() is not None
            try:
                with open(events_path, "rb") as stream:
                    stream.seek(position)
                    chunk = stream.read()
                    position += len(chunk)
            except FileNotFoundError:
                chunk = b""
            pending += chunk
            *lines, pending = pending.split(b"\n")
            now = time.monotonic()
            for line in lines:
                key, kind = describe(line)
                if key is None:
                    continue
                if kind in ("testStarted", "testCaseStarted"):
                    running[key] = now
                elif kind in ("testEnded", "testCaseEnded"):
                    began = running.pop(key, None)
                    if began is not None and "/" in key:  # a test function, not a suite
                        durations.append((now - began, key))
                    last_end = now
            if ended:
                break
            if now - started > options.limit:
                hung = f"the run has taken over {options.limit:.0f} s"
            elif running and now - last_end > options.stall:
                hung = f"no test has ended for {now - last_end:.0f} s"
            if hung:
                break
            time.sleep(1)

        if hung:
            report(f"run-tests: {hung}; still running:", running, time.monotonic())
            sys.stderr.write("run-tests: sending the test process SIGABRT for every thread's backtrace\n")
            sys.stderr.flush()
            signal_group(child, signal.SIGABRT)
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                signal_group(child, signal.SIGKILL)
                child.wait()
            signal_group(child, signal.SIGKILL)  # children the tests started (chains, nodes)
            return 1

        signal_group(child, signal.SIGKILL)  # children the tests started and left behind
        if child.returncode < 0:
            sys.stderr.write(f"run-tests: the test process was killed by {signal.Signals(-child.returncode).name}; "
                             "the lines above it say why\n")
            report("run-tests: tests running when it ended:", running, time.monotonic())
            return 1
        if durations and options.slowest > 0:
            durations.sort(reverse=True)
            print(f"run-tests: the {min(options.slowest, len(durations))} longest-running tests "
                  f"(of {len(durations)}; start to end, so waits for a shared local EVM count; "
                  f"whole run {time.monotonic() - started:.0f} s):")
            for seconds, key in durations[: options.slowest]:
                print(f"  {seconds:7.1f} s  {key}")
        sys.stdout.flush()
        return child.returncode


def describe(line: bytes):
    """The test (or test case) a record is about, and the record's kind."""
    try:
        record = json.loads(line)
    except ValueError:
        return None, None
    if record.get("kind") != "event":
        return None, None
    payload = record.get("payload", {})
    test = payload.get("testID")
    if test is None:
        return None, None
    kind = payload.get("kind")
    case = payload.get("testCase")
    if kind in ("testCaseStarted", "testCaseEnded"):
        arguments = json.dumps(case.get("arguments"), sort_keys=True) if isinstance(case, dict) else ""
        return f"{test} {arguments}".strip(), kind
    return test, kind


def report(title: str, running: dict, now: float) -> None:
    sys.stderr.write(title + "\n")
    for key, began in sorted(running.items(), key=lambda item: item[1]):
        sys.stderr.write(f"  {now - began:7.0f} s  {key}\n")
    sys.stderr.flush()


def signal_group(child: subprocess.Popen, which: int) -> None:
    try:
        os.killpg(child.pid, which)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    sys.exit(main())
