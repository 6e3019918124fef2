#!/usr/bin/env python3
"""Keeps Docs/Architecture.md's module diagram and module table true to Package.swift.

The diagram between the markers `<!-- modules:begin -->` and `<!-- modules:end -->` is
generated from `swift package dump-package`: every target that is not a test, with an
arrow for each dependency on another target of the package, after transitive reduction
(an arrow A --> C is left out when A reaches C through another target), so the picture
shows the layering rather than every import. Products (what a user may import) are drawn
with a double border. The module table must have exactly one row per such target.

`make test` runs it with --check, which fails when the committed diagram differs or the
table misses a target or names one that no longer exists.

    Tools/docs/modules.py [--check]
"""

import json
import re
import subprocess
import sys

DOCUMENT = "Docs/Architecture.md"
BEGIN, END = "<!-- modules:begin -->", "<!-- modules:end -->"


def package():
    dump = subprocess.run(["swift", "package", "dump-package"], check=True, capture_output=True, text=True).stdout
    return json.loads(dump)


def graph(manifest):
    """Target name -> (kind, set of package targets it depends on); test targets left out."""
    targets = {}
    for target in manifest["targets"]:
        if target["type"] == "test":
            continue
        deps = set()
        for dependency in target["dependencies"]:
            for key in ("byName", "target"):
                if key in dependency:
                    deps.add(dependency[key][0])
        targets[target["name"]] = (target["type"], deps)
    for name, (kind, deps) in targets.items():
        targets[name] = (kind, {d for d in deps if d in targets})
    return targets


def reduced(targets):
    """The edges that no longer path implies."""
    def reach(start, skip):
        seen, stack = set(), [d for d in targets[start][1] if d != skip]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(targets[node][1])
        return seen

    edges = []
    for name in sorted(targets):
        for dep in sorted(targets[name][1]):
            if dep not in reach(name, dep):
                edges.append((name, dep))
    return edges


def node_id(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def diagram(manifest):
    targets = graph(manifest)
    products = {t for p in manifest["products"] if "library" in p["type"] for t in p["targets"]}
    lines = ["```mermaid", "flowchart TD"]
    for name in sorted(targets):
        kind = targets[name][0]
        if name in products:
            shape = f'[["{name}"]]'
        elif kind == "executable":
            shape = f'(["{name}"])'
        elif kind == "system":
            shape = f'[("{name}")]'
        else:
            shape = f'["{name}"]'
        lines.append(f"    {node_id(name)}{shape}")
    for source, dep in reduced(targets):
        lines.append(f"    {node_id(source)} --> {node_id(dep)}")
    lines.append("```")
    legend = (
        "Double border: a library product (what a user imports). Rounded: an executable. "
        "Cylinder: a C library from Debian. Plain: a target the package uses inside itself. "
        "An arrow is a dependency; one that another path already implies is left out."
    )
    return "\n".join(lines) + "\n\n" + legend + "\n"


def table_rows(text):
    """The target names of the module table: the rows of the "## Modules" section."""
    section = text.split("\n## Modules\n", 1)[-1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z0-9_-]+)` \|", section, re.M))


def main():
    check = "--check" in sys.argv[1:]
    manifest = package()
    text = open(DOCUMENT, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit(f"{DOCUMENT}: the markers {BEGIN} and {END} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = head + BEGIN + "\n" + diagram(manifest) + END + tail
    names = set(graph(manifest))
    rows = table_rows(text)
    problems = [f"the module table has no row for `{n}`" for n in sorted(names - rows)]
    problems += [f"the module table names `{n}`, which Package.swift does not have" for n in sorted(rows - names)]
    if check:
        if updated != text:
            problems.append("the module diagram differs from Package.swift: run python3 Tools/docs/modules.py")
        if problems:
            sys.exit("\n".join(f"{DOCUMENT}: {p}" for p in problems))
        return
    if updated != text:
        open(DOCUMENT, "w", encoding="utf-8").write(updated)
        print(f"wrote {DOCUMENT}")
    for problem in problems:
        print(f"{DOCUMENT}: {problem}", file=sys.stderr)


if __name__ == "__main__":
    main()
