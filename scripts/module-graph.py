#!/usr/bin/env python3
"""The crate's modules import one another without a circle, and in layers: `make lint`.

Reads every `crate::`, `super::` and `self::` path in src/ (outside tests and comments),
resolves each to the module that holds it, and fails when

- modules import each other in a circle (a strongly connected component of more than one
  module; a module using its own parent's items, as `super::x` does, is not an edge), or
- a layer imports from a layer above it: the pure core (everything but runtime/, filter/
  and hosts/) imports nothing of the three; runtime/ imports neither host; the two hosts do
  not import each other.

`-v` prints every module's imports.
"""
import os
import re
import sys
from collections import defaultdict

ROOT = "src"


def modules():
    found = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(dirpath, f)
                parts = os.path.relpath(path, ROOT)[:-3].split("/")
                if parts[-1] == "mod":
                    parts = parts[:-1]
                if parts == ["lib"]:
                    parts = []
                found["::".join(parts)] = path
    return found


def code(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    text = text if cut < 0 else text[:cut]
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


def edges(mods):
    names = set(mods)

    def resolve(segments):
        for k in range(len(segments), 0, -1):
            candidate = "::".join(segments[:k])
            if candidate in names:
                return candidate
        return None

    graph = defaultdict(set)
    for module, path in mods.items():
        if module.split("::")[-1] in ("tests", "report_tests"):
            continue
        here = module.split("::") if module else []
        for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)(::\{[^}]*\})?", code(path)):
            base, rest, group = m.group(1), m.group(2)[2:].split("::"), m.group(3)
            if base == "crate":
                start = []
            elif base == "self":
                start = here
            else:
                start = here[:-1]
                while rest and rest[0] == "super":
                    start, rest = start[:-1], rest[1:]
            paths = [rest]
            if group:
                for item in group[3:-1].split(","):
                    item = item.strip().split(" as ")[0].split("::{")[0]
                    if item and item != "self":
                        paths.append(rest + item.split("::"))
            for p in paths:
                target = resolve(start + p)
                if target is not None and target != module and not module.startswith(target + "::"):
                    graph[module].add(target)
    return graph


def circles(mods, graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return found


def layer(module):
    top = module.split("::")[0]
    if top in ("filter", "hosts"):
        return top
    return "runtime" if top == "runtime" else "core"


# What each layer may import besides itself.
ALLOWED = {
    "core": {"core"},
    "runtime": {"core", "runtime"},
    "filter": {"core", "runtime", "filter"},
    "hosts": {"core", "runtime", "hosts"},
}


def main():
    mods = modules()
    graph = edges(mods)
    if "-v" in sys.argv:
        for m in sorted(graph):
            print(f"{m or 'lib'} -> {', '.join(sorted(graph[m]))}")
    failures = [f"modules in a circle: {' ↔ '.join(c)}" for c in circles(mods, graph)]
    for m in sorted(graph):
        if m == "":
            continue  # lib.rs declares the modules and picks a host
        for t in sorted(graph[m]):
            if layer(t) not in ALLOWED[layer(m)]:
                failures.append(f"{m} ({layer(m)}) imports {t} ({layer(t)}), a layer above it")
    for f in failures:
        print(f"module graph: {f}")
    if failures:
        sys.exit(1)
    print(f"module graph: {len(mods)} modules, {sum(len(v) for v in graph.values())} imports, "
          "no circle, no import up a layer")


main()
