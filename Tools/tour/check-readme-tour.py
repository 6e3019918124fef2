#!/usr/bin/env python3
"""Runs README.md's "Two terminals" tour as written, and fails if any step does.

`make test` runs it after the test suite, with the release `parley` built. It reads the
tour's code blocks from README.md itself, so the README cannot drift from what works:

- terminal 0's command starts in the background;
- each terminal's `parley keygen` runs, and its `parley node` starts with a pipe for stdin;
- the lines typed at Alice's console are sent as written. Two placeholders are filled
  in: `pk1…BOB…` with Bob's key from his ready line, and `3f9c01aa` with the channel id
  prefix Alice's `open` answered;
- every answer must say ok. Then the background block runs: the node with `--control`,
  `parley ctl`, and `kill %1`, as SIGTERM to that node.

The tour's paths (/tmp/tour) and ports (7545, 7001, 7002) are the README's. The folder is
emptied first. Standard library only.

    Tools/tour/check-readme-tour.py [--readme README.md] [--bin .build/release]
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time


class Node:
    """A `parley node` with stdin and stdout piped; collects its JSON lines."""

    def __init__(self, argv, env, name):
        self.name = name
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.lines = []
        self.number = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"raw": line})

    def wait_for(self, predicate, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        fail(f"{self.name}: {what} did not come within {seconds} s; its output: {self.lines[-5:]}")

    def type(self, text, seconds=60):
        self.number += 1
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        ident = str(self.number)
        return self.wait_for(lambda l: l.get("id") == ident and "ok" in l, seconds, f"the answer to `{text}`")


def fail(message):
    sys.stderr.write(f"README tour: {message}\n")
    sys.exit(1)


def blocks(readme):
    """The sh blocks of the "Two terminals" section."""
    text = open(readme, encoding="utf-8").read()
    section = text.split("### Two terminals", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def commands(block):
    """Lines of a block with continuations joined, comments dropped, each with its terminal."""
    joined, pending, terminal = [], "", None
    for raw in block.splitlines():
        line = raw.rstrip()
        marker = re.match(r"#\s*terminal (\d)", line.strip())
        if marker:
            terminal = int(marker.group(1))
            continue
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        code = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
        if code:
            joined.append((terminal, code))
    return joined


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--bin", default=".build/release")
    options = parser.parse_args()
    tour, background = blocks(options.readme)[:2]
    env = dict(os.environ)
    shutil.rmtree("/tmp/tour", ignore_errors=True)
    started = []
    nodes = {}
    try:
        for terminal, line in commands(tour):
            if line.startswith("export PATH="):
                env["PATH"] = os.path.abspath(options.bin) + os.pathsep + env["PATH"]
                continue
            words = shlex.split(line)
            if words[0] == "parley" and words[1] == "devchain":
                chain = subprocess.Popen(words, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                started.append(chain)
                time.sleep(1.5)
                if chain.poll() is not None:
                    fail(f"`{line}` exited: {chain.stderr.read()}")
            elif words[0] == "parley" and words[1] == "keygen":
                result = subprocess.run(words, env=env, capture_output=True, text=True)
                if result.returncode != 0:
                    fail(f"`{line}` failed: {result.stderr}")
            elif words[0] == "parley" and words[1] == "node":
                node = Node(words, env, f"terminal {terminal}")
                started.append(node.process)
                node.ready = node.wait_for(lambda l: l.get("event") == "ready", 30, "the ready line")
                nodes[terminal] = node
            else:
                console = nodes[terminal]
                bob = nodes[1].ready["key"]
                line = line.replace("pk1…BOB…", bob)
                if hasattr(console, "channel"):
                    line = line.replace("3f9c01aa", console.channel[:8])
                answer = console.type(line)
                if not answer.get("ok"):
                    fail(f"`{line}` answered {answer}")
                print(f"README tour: `{line}` → ok")
                if answer.get("command") == "open":
                    console.channel = answer["channel"]
        for node in nodes.values():
            if node.process.poll() is None and node.process.stdin:
                node.process.stdin.close()
            node.process.wait(timeout=30)

        for _, line in commands(background):
            words = shlex.split(line.replace("</dev/null &", "").strip())
            if line.endswith("&"):
                daemon = subprocess.Popen(words, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                started.append(daemon)
                socket = next(w.split(":", 1)[1] for w in words if w.startswith("unix:"))
                deadline = time.monotonic() + 30
                while not os.path.exists(socket) and time.monotonic() < deadline:
                    time.sleep(0.1)
            elif words[0] == "kill":
                daemon.send_signal(signal.SIGTERM)
                if daemon.wait(timeout=30) != 0:
                    fail("the background node did not exit 0 on SIGTERM")
                print("README tour: `kill %1` → the node exited 0")
            else:
                result = subprocess.run(words, env=env, capture_output=True, text=True, timeout=60)
                if result.returncode != 0:
                    fail(f"`{line}` exited {result.returncode}: {result.stderr}")
                print(f"README tour: `{line}` → ok")
        print("README tour: every step worked")
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
