#!/usr/bin/env python3
"""Builds and runs Parley's libFuzzer targets (Docs/Architecture.md, "Fuzzing").

  fuzz.py build                  build every fuzz-<name> into .build-fuzz (release, ASan, libFuzzer)
  fuzz.py run --seconds N        fuzz each target for N seconds over its committed corpus;
                                 prints executions and coverage per target, exits 1 on a finding
  fuzz.py run --runs N           stop each target after N executions instead (e.g. 10000000),
                                 in fresh processes of 1,000,000 executions each
  fuzz.py seed                   (re)write Fuzz/Corpus/<name>: each target's seeds, the shipped
                                 drills, and the journals and peers files of a real `parley demo`
  fuzz.py merge                  fold what the fuzzer found (.build-fuzz/work) into
                                 Fuzz/Corpus, keeping only inputs that add coverage
  fuzz.py report                 executions and coverage per target, summed over every run on
                                 this machine (each run is appended to .build-fuzz/campaign.jsonl)

--targets a,b limits any command to some targets; --json prints the run's results as JSON;
--no-build runs the binaries as they are (run builds them first otherwise, incrementally).
Flags after -- go to libFuzzer, e.g. -- -jobs=2 -workers=2.

Why not `-sanitize=fuzzer` on the link: SwiftPM gives each executable its own `main`, which
clashes with libFuzzer's. So the compiler instruments with -sanitize=fuzzer,address (passed
to the frontend), the link uses ASan only plus libFuzzer's "no main" runtime, and each
fuzz-<name> starts libFuzzer itself (FuzzDriver, LLVMFuzzerRunDriver).
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRATCH = os.path.join(ROOT, ".build-fuzz")
TARGETS = ["frames", "handshake", "wire", "journal", "devchain", "keyfile", "peers", "drill", "ethereum"]
# A decoder may allocate in proportion to its input, never more: any single allocation over
# this many MiB (hundreds of times the largest input) is reported as a finding.
MALLOC_LIMIT_MB = 32


def log(text):
    print(text, file=sys.stderr, flush=True)


# The Swift toolchain: `make` passes its $(SWIFT) here.
SWIFT = os.environ.get("SWIFT", "swift")


def fuzzer_runtime():
    swift = shutil.which(SWIFT)
    if not swift:
        sys.exit(f"fuzz.py: {SWIFT} is not on PATH")
    toolchain = os.path.dirname(os.path.dirname(os.path.realpath(swift)))
    found = sorted(glob.glob(os.path.join(toolchain, "lib", "clang", "*", "lib", "linux",
                                          f"libclang_rt.fuzzer_no_main-{platform.machine()}.a")))
    found += sorted(glob.glob(os.path.join(toolchain, "lib", "clang", "*", "lib", "*",
                                           "libclang_rt.fuzzer_no_main.a")))
    if not found:
        sys.exit(f"fuzz.py: libFuzzer's no-main runtime is not in the Swift toolchain at {toolchain}")
    return found[-1]


def build_command(product):
    return [SWIFT, "build", "-c", "release", "--scratch-path", SCRATCH, "--product", product,
            "-Xswiftc", "-sanitize=address",
            "-Xswiftc", "-Xfrontend", "-Xswiftc", "-sanitize=fuzzer,address",
            "-Xswiftc", "-DFUZZING",
            "-Xlinker", fuzzer_runtime(), "-Xlinker", "-lstdc++"]


def max_len(name):
    """The largest input the target reads (its FuzzTarget.maxInputBytes), passed as -max_len."""
    return int(subprocess.run([binary(name), "--max-len"], check=True, capture_output=True, text=True).stdout)


def binary(name):
    return os.path.join(SCRATCH, "release", f"fuzz-{name}")


def build(targets):
    env = dict(os.environ, PARLEY_FUZZ="1")
    for position, name in enumerate(targets, 1):
        log(f"fuzz: building fuzz-{name} ({position}/{len(targets)}; the first one builds every module with ASan, "
            "which takes minutes)")
        started = time.time()
        result = subprocess.run(build_command(f"fuzz-{name}"), cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            print(result.stdout[-8000:])
            sys.exit(f"fuzz.py: building fuzz-{name} failed")
        log(f"fuzz: built fuzz-{name} in {time.time() - started:.0f} s")


def seed(targets):
    for name in targets:
        corpus = os.path.join(ROOT, "Fuzz", "Corpus", name)
        os.makedirs(corpus, exist_ok=True)
        subprocess.run([binary(name), "--write-seeds", corpus], check=True)
        if name == "drill":
            for path in sorted(glob.glob(os.path.join(ROOT, "Examples", "Drills", "*.yaml"))):
                shutil.copy(path, os.path.join(corpus, "example-" + os.path.basename(path)))
    if {"journal", "peers"} & set(targets):
        demo_seeds(targets)


def demo_seeds(targets):
    """The journals, peers and identity files a real `parley demo` (8 payments, a cheat
    refuted) leaves behind: demo-<who>-segment in the journal corpus (its first byte 4 reads
    it raw, as segment 1, the last), demo-<who>-peers and -identity in the peers corpus."""
    log("fuzz: running `parley demo --payments 8 --dispute cheat` for real journal and peers files")
    subprocess.run([SWIFT, "build", "-c", "release", "--product", "parley"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    bin_path = subprocess.run([SWIFT, "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.join(scratch, "demo")
        subprocess.run([os.path.join(bin_path, "parley"), "demo", "--payments", "8", "--dispute", "cheat",
                        "--data", data], check=True, stdout=subprocess.DEVNULL)
        for who in ("alice", "bob"):
            if "journal" in targets:
                with open(os.path.join(data, who, "segment-0000000000000001.log"), "rb") as segment:
                    body = segment.read()
                with open(os.path.join(ROOT, "Fuzz", "Corpus", "journal", f"demo-{who}-segment"), "wb") as out:
                    out.write(bytes([4]) + body)
            if "peers" in targets:
                for kind in ("peers", "identity"):
                    shutil.copy(os.path.join(data, who, kind),
                                os.path.join(ROOT, "Fuzz", "Corpus", "peers", f"demo-{who}-{kind}"))


STATUS = re.compile(r"^#(\d+)\s")
FIELD = {name: re.compile(name + r": (\d+)") for name in ("cov", "ft", "corp")}


def run_one(name, seconds, runs, extra):
    work = os.path.join(SCRATCH, "work", name)
    artifacts = os.path.join(SCRATCH, "artifacts", name) + "/"
    os.makedirs(work, exist_ok=True)
    os.makedirs(artifacts, exist_ok=True)
    corpus = os.path.join(ROOT, "Fuzz", "Corpus", name)
    command = [binary(name), work, corpus, f"-max_len={max_len(name)}", f"-malloc_limit_mb={MALLOC_LIMIT_MB}",
               "-rss_limit_mb=4096", "-timeout=20", "-print_final_stats=1", f"-artifact_prefix={artifacts}"]
    dictionary = os.path.join(ROOT, "Fuzz", "Dictionaries", f"{name}.dict")
    if os.path.exists(dictionary):
        command.append(f"-dict={dictionary}")
    if runs:
        command.append(f"-runs={runs}")
    else:
        command.append(f"-max_total_time={seconds}")
    command += extra
    started = time.time()
    # Swift's own crash backtracer would fight ASan's report; libFuzzer and ASan report crashes here.
    # ASan records a stack for every allocation by default, which costs half the time of an
    # allocation-heavy target; a finding's report still says where it happened (rerun the
    # artifact with ASAN_OPTIONS=malloc_context_size=30 for the allocation's stack).
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no")
    env.setdefault("ASAN_OPTIONS", "malloc_context_size=0")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
    executions = coverage = features = corpus_size = 0
    tail = []
    last_shown = started
    for line in process.stdout:
        tail = (tail + [line])[-60:]
        match = STATUS.match(line)
        if match:
            # libFuzzer leaves a field out while it is zero: read each on its own.
            executions = int(match.group(1))
            fields = {name: pattern.search(line) for name, pattern in FIELD.items()}
            coverage = int(fields["cov"].group(1)) if fields["cov"] else coverage
            features = int(fields["ft"].group(1)) if fields["ft"] else features
            corpus_size = int(fields["corp"].group(1)) if fields["corp"] else corpus_size
            if time.time() - last_shown >= 30:
                last_shown = time.time()
                log(f"fuzz: {name}: {executions:,} executions, cov {coverage}, ft {features} "
                    f"({time.time() - started:.0f} s)")
        elif line.startswith("stat::number_of_executed_units:"):
            executions = int(line.split(":")[-1])
    code = process.wait()
    elapsed = time.time() - started
    crash = error = None
    if code != 0:
        found = [l.split("Test unit written to ")[-1].strip() for l in tail if "Test unit written to" in l]
        if found:
            crash = found[-1]
        else:
            # Not a finding: libFuzzer did not run (a bad flag, a missing file) or was interrupted.
            error = f"libFuzzer exited with {code} without writing an input"
    return {"target": name, "executions": executions, "coverage": coverage, "features": features,
            "corpus": corpus_size, "seconds": round(elapsed, 1),
            "executions_per_second": round(executions / elapsed) if elapsed > 0 else 0,
            "finding": crash, "error": error, "exit_code": code,
            "output_tail": "".join(tail) if crash or error else None}


LEDGER = os.path.join(SCRATCH, "campaign.jsonl")
# A campaign by executions runs fresh processes of at most this many executions each: one
# long-lived process slows down several times over (ASan's allocator and quarantine), and a
# fresh one starts from the whole corpus it left behind.
CHUNK_RUNS = 1_000_000


def commit():
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def record(result):
    """Appends a run to .build-fuzz/campaign.jsonl: `fuzz.py report` sums a machine's campaigns."""
    os.makedirs(SCRATCH, exist_ok=True)
    entry = {k: v for k, v in result.items() if k != "output_tail"}
    entry.update(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), commit=commit())
    with open(LEDGER, "a") as ledger:
        ledger.write(json.dumps(entry) + "\n")


def run_target(name, seconds, runs, extra):
    """One target for `seconds`, or for `runs` executions in fresh processes of CHUNK_RUNS."""
    if not runs:
        result = run_one(name, seconds, 0, extra)
        record(result)
        return result
    total = {"target": name, "executions": 0, "seconds": 0.0, "coverage": 0, "features": 0, "corpus": 0,
             "finding": None, "error": None, "exit_code": 0, "output_tail": None}
    while total["executions"] < runs and not total["finding"] and not total["error"]:
        chunk = run_one(name, seconds, min(CHUNK_RUNS, runs - total["executions"]), extra)
        record(chunk)
        if chunk["executions"] == 0 and not chunk["finding"]:
            total.update(error=chunk["error"] or "libFuzzer ran nothing", output_tail=chunk["output_tail"])
            break  # libFuzzer did not start: its output says why
        total["executions"] += chunk["executions"]
        total["seconds"] = round(total["seconds"] + chunk["seconds"], 1)
        for key in ("coverage", "features", "corpus", "finding", "error", "exit_code", "output_tail"):
            total[key] = chunk[key]
        log(f"fuzz: {name}: {total['executions']:,} of {runs:,} executions, cov {total['coverage']}, "
            f"ft {total['features']} ({total['seconds']:.0f} s)")
    total["executions_per_second"] = round(total["executions"] / total["seconds"]) if total["seconds"] else 0
    return total


def report(targets, as_json):
    """Executions per target summed over every run in the ledger, with the newest coverage."""
    totals = {name: {"target": name, "executions": 0, "seconds": 0.0, "runs": 0, "coverage": 0, "features": 0,
                     "findings": 0, "first": None, "last": None} for name in targets}
    if os.path.exists(LEDGER):
        with open(LEDGER) as ledger:
            for line in ledger:
                entry = json.loads(line)
                total = totals.get(entry["target"])
                if total is None:
                    continue
                total["executions"] += entry["executions"]
                total["seconds"] = round(total["seconds"] + entry["seconds"], 1)
                total["runs"] += 1
                total["coverage"], total["features"] = entry.get("coverage", 0), entry.get("features", 0)
                total["findings"] += 1 if entry.get("finding") else 0
                total["first"] = total["first"] or entry["time"]
                total["last"] = entry["time"]
    rows = list(totals.values())
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'target':<10} {'executions':>14} {'seconds':>12} {'runs':>5} {'cov':>6} {'ft':>7} {'findings':>9}")
    for r in rows:
        print(f"{r['target']:<10} {r['executions']:>14,} {r['seconds']:>12,.0f} {r['runs']:>5} {r['coverage']:>6} "
              f"{r['features']:>7} {r['findings']:>9}")
    return 0


def run(targets, seconds, runs, as_json, extra, rebuild):
    if rebuild:
        build(targets)  # incremental: seconds when nothing changed
    results = []
    for name in targets:
        log(f"fuzz: {name}: " + (f"{runs:,} executions" if runs else f"{seconds} s") + " ...")
        result = run_target(name, seconds, runs, extra)
        results.append(result)
        outcome = f"FINDING {result['finding']}" if result["finding"] else (
            f"ERROR {result['error']}" if result["error"] else "ok")
        log(f"fuzz: {name}: {result['executions']:,} executions in {result['seconds']} s "
            f"({result['executions_per_second']:,}/s), cov {result['coverage']}, ft {result['features']}: {outcome}")
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'target':<10} {'executions':>14} {'exec/s':>9} {'cov':>6} {'ft':>7} {'seconds':>8}  result")
        for r in results:
            result = ("FINDING " + r["finding"]) if r["finding"] else (("ERROR " + r["error"]) if r["error"] else "ok")
        print(f"{r['target']:<10} {r['executions']:>14,} {r['executions_per_second']:>9,} {r['coverage']:>6} "
              f"{r['features']:>7} {r['seconds']:>8}  {result}")
    for r in results:
        if r["error"]:
            print(f"\n--- {r['target']}: libFuzzer failed: {r['error']} ---\n{r['output_tail'] or ''}", file=sys.stderr)
    findings = [r for r in results if r["finding"]]
    for r in findings:
        print(f"\n--- {r['target']}: the fuzzer's last words ---\n{r['output_tail']}", file=sys.stderr)
        print(f"Reproduce: SWIFT_BACKTRACE=enable=no {binary(r['target'])} {r['finding']}\n"
              f"Then fix the decoder and keep the input as Fuzz/Regressions/{r['target']}/<what-it-broke> "
              "(the normal suite replays it).", file=sys.stderr)
    return 1 if findings or any(r["error"] for r in results) else 0


def merge(targets):
    for name in targets:
        work = os.path.join(SCRATCH, "work", name)
        corpus = os.path.join(ROOT, "Fuzz", "Corpus", name)
        merged = os.path.join(SCRATCH, "merged", name)
        shutil.rmtree(merged, ignore_errors=True)
        os.makedirs(merged)
        subprocess.run([binary(name), "-merge=1", f"-max_len={max_len(name)}", merged, corpus, work], check=True)
        for path in glob.glob(os.path.join(merged, "*")):
            shutil.copy(path, corpus)
        log(f"fuzz: {name}: {len(os.listdir(corpus))} inputs in Fuzz/Corpus/{name}")


def main():
    parser = argparse.ArgumentParser(description="Build and run Parley's libFuzzer targets.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("command", choices=["build", "run", "seed", "merge", "report"])
    parser.add_argument("--seconds", type=int, default=60, help="seconds per target (run)")
    parser.add_argument("--runs", type=int, default=0, help="executions per target instead of a time (run)")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets (default: all)")
    parser.add_argument("--json", action="store_true", help="print the run's results as JSON")
    parser.add_argument("--no-build", action="store_true", help="run the fuzz-<name> binaries already built (run)")
    arguments = sys.argv[1:]
    extra = arguments[arguments.index("--") + 1:] if "--" in arguments else []
    if "--" in arguments:
        arguments = arguments[:arguments.index("--")]
    parser.epilog += "\nMore libFuzzer flags go after --, e.g. fuzz.py run --seconds 60 -- -seed=1\n"
    args = parser.parse_args(arguments)
    args.extra = extra
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        sys.exit(f"fuzz.py: unknown targets {unknown}; known: {TARGETS}")
    if args.command == "build":
        build(targets)
    elif args.command == "seed":
        build(targets)
        seed(targets)
    elif args.command == "merge":
        merge(targets)
    elif args.command == "report":
        sys.exit(report(targets, args.json))
    else:
        sys.exit(run(targets, args.seconds, args.runs, args.json, args.extra, not args.no_build))


if __name__ == "__main__":
    main()
