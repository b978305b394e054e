#!/usr/bin/env python3
"""Finds circles of files in the workspace: within each crate, file A depends on file B when
A names one of B's items through a path (`crate::b::...`, `super::b`, `use crate::{b, ...}`,
a re-export from the crate root); a circle is a strongly connected set of two or more files.
Test files (`*_tests.rs`, `tests.rs`, `tests/`) and a file's own `#[cfg(test)]` part are left
out: a module's tests may use anything. Exit 1 when a circle exists, naming its files.

Run by scripts/test.sh; `python3 scripts/check_layers.py crates/kopsrs-aws` checks one crate.
"""

import os
import re
import sys
from collections import defaultdict


def module_files(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                module = ()
            elif rel[-1] == "mod":
                module = tuple(rel[:-1])
            else:
                module = tuple(rel)
            out[module] = path
    return out


def strip(text):
    """The text without comments, string literals and the `#[cfg(test)]` tail."""
    cut = re.search(r"^#\[cfg\(test\)\]", text, re.M)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def references(text, module, modules):
    """The modules of the crate this file's code names."""
    found = set()
    names = set(m[-1] for m in modules if m)

    def resolve(base, parts):
        # The longest module path that `base + parts` starts with.
        full = list(base) + parts
        for n in range(len(full), 0, -1):
            if tuple(full[:n]) in modules:
                return tuple(full[:n])
        return None

    # crate::a::b..., also inside `use crate::{a, b::c}` groups.
    for match in re.finditer(r"\bcrate::((?:\w+::)*)(\w+|\{)", text):
        path = match.group(1).split("::")[:-1] + [match.group(2)]
        if path[-1] == "{":
            depth, i, start = 0, match.end() - 1, match.end()
            while i < len(text):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            group = text[start:i]
            prefix = path[:-1]
            for item in re.split(r",(?![^{]*\})", group):
                item = item.strip()
                if not item:
                    continue
                head = re.split(r"::|\s|\{", item)[0]
                target = resolve((), prefix + [head])
                if target:
                    found.add(target)
        else:
            target = resolve((), path)
            if target:
                found.add(target)
    # super::a... relative to this module's parent.
    parent = module[:-1]
    for match in re.finditer(r"\bsuper::((?:\w+::)*\w+)", text):
        parts = match.group(1).split("::")
        target = resolve(parent, parts)
        if target:
            found.add(target)
        elif parent in modules:
            found.add(parent)
    found.discard(module)
    # A module may name its own children freely (they sit below it).
    return {m for m in found if not (len(m) > len(module) and m[: len(module)] == module)}


def circles(crate):
    src = os.path.join(crate, "src")
    modules = module_files(src)
    graph = defaultdict(set)
    for module, path in modules.items():
        if module and (module[-1] in ("tests",) or module[-1].endswith("_tests")):
            continue
        text = strip(open(path, encoding="utf-8").read())
        # The crate root's declarations and re-exports are not uses; its own code is.
        if module == ():
            text = re.sub(r"^\s*(pub(\([^)]*\))?\s+)?(use|mod)\b[^;]*;", "", text, flags=re.M)
        for target in references(text, module, set(modules)):
            graph[module].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return [[modules[m] for m in c] for c in out]


def main():
    crates = sys.argv[1:] or sorted(
        os.path.join("crates", c) for c in os.listdir("crates") if os.path.isdir(os.path.join("crates", c, "src"))
    )
    bad = 0
    for crate in crates:
        for circle in circles(crate):
            bad += 1
            print(f"circle in {crate}: " + " -> ".join(circle))
    if bad:
        print(f"{bad} circle(s) of files", file=sys.stderr)
        return 1
    print(f"no circle of files in {len(crates)} crate(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
