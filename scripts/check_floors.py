#!/usr/bin/env python3
"""Floors of src/: every path to another file of the crate (`use crate::…`, inline `crate::…`,
`super::…`, a child module's `name::…`) must point to the same floor or one below, and no set of
files may depend on each other in a circle of more than two (strongly connected components of
the file graph have at most two files). Comments and string literals are ignored.

Floors, bottom first, are the directories of src/ named in FLOORS (base, io, integrations, runtime,
edge); lib.rs and main.rs stand above them all, and code inside the floors may not use the old
paths lib.rs re-exports for tests and benchmarks. `--map prefix=floor` (repeatable) assigns files by path prefix instead (for the time
before the files move into floor directories)."""
import os, re, sys, collections

FLOORS = ["base", "io", "integrations", "runtime", "edge"]
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

def strip(src):
    """Comments and the contents of string/char literals blanked; newlines kept (line numbers)."""
    out, i, n = [], 0, len(src)
    blank = lambda t: re.sub(r"[^\n]", " ", t)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i); j = n if j < 0 else j
            out.append(" " * (j - i)); i = j; continue
        if src.startswith("/*", i):
            depth, j = 0, i
            while j < n:
                if src.startswith("/*", j): depth += 1; j += 2; continue
                if src.startswith("*/", j):
                    depth -= 1; j += 2
                    if depth == 0: break
                    continue
                j += 1
            out.append(blank(src[i:j])); i = j; continue
        m = re.match(r'b?r(#*)"', src[i:i + 12])
        if m and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0))); j = n if j < 0 else j + len(end)
            out.append(blank(src[i:j])); i = j; continue
        if src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(blank(src[i:j])); i = j; continue
        if src[i] == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:i + 12])
            if m: out.append(" " * len(m.group(0))); i += len(m.group(0)); continue
        out.append(src[i]); i += 1
    return "".join(out)

def use_paths(tree):
    """`a::{b, c::{d as e}}` → [[a,b],[a,c,d]]."""
    tree = re.sub(r"\s+as\s+\w+", "", tree); tree = re.sub(r"\s+", "", tree)
    res = []
    def rec(prefix, t):
        parts, depth, cur = [], 0, ""
        for ch in t:
            depth += ch == "{"; depth -= ch == "}"
            if ch == "," and depth == 0: parts.append(cur); cur = ""; continue
            cur += ch
        parts.append(cur)
        for p in filter(None, parts):
            k = p.find("{")
            if k >= 0: rec(prefix + [x for x in p[:k].split("::") if x], p[k + 1:p.rfind("}")])
            else: res.append(prefix + [x for x in p.split("::") if x])
    rec([], tree)
    return res

def main(argv):
    mapping = [a.split("=", 1) for a in argv if "=" in a]
    files = sorted(os.path.relpath(os.path.join(d, f), SRC) for d, _, fs in os.walk(SRC) for f in fs if f.endswith(".rs"))
    def modpath(f):
        p = f[:-3].split("/")
        return tuple(p[:-1] if p[-1] in ("mod", "lib") else p)
    mod2file = {modpath(f): f for f in files if f != "main.rs"}
    def floor(f):
        if f in ("lib.rs", "main.rs"): return len(FLOORS)
        for prefix, name in mapping:
            if f.startswith(prefix): return FLOORS.index(name)
        top = f.split("/")[0]
        return FLOORS.index(top) if top in FLOORS else None
    def resolve(segs, cur):
        mod, s = list(cur), list(segs)
        if s[0] == "crate": mod, s = [], s[1:]
        else:
            while s and s[0] in ("super", "self"):
                if s[0] == "super": mod = mod[:-1]
                s = s[1:]
        while s and tuple(mod + [s[0]]) in mod2file:
            mod.append(s[0]); s = s[1:]
        return mod2file.get(tuple(mod))
    edges = collections.defaultdict(list)  # (from, to) -> [(line, path)]
    problems = []
    for f in files:
        s = strip(open(os.path.join(SRC, f), encoding="utf-8").read())
        base = list(modpath(f)) if f != "main.rs" else []
        inline_mods = []
        for m in re.finditer(r"(?<!\w)mod\s+(\w+)\s*\{", s):
            j, depth = m.end(), 1
            while depth and j < len(s):
                depth += (s[j] == "{") - (s[j] == "}"); j += 1
            inline_mods.append((m.start(), j, m.group(1)))
        cur = lambda pos: base + [name for a, b, name in inline_mods if a <= pos < b]
        line = lambda pos: s.count("\n", 0, pos) + 1
        kids = {k[-1] for k in mod2file if len(k) == len(base) + 1 and tuple(k[:-1]) == tuple(base)}
        roots = "crate|super|self" + ("|gitmoxi" if f == "main.rs" else "")
        found = []
        for m in re.finditer(r"(?<![\w:])use\s+([^;]*);", s):
            for p in use_paths(m.group(1)):
                found.append((m.start(), p))
        for m in re.finditer(r"(?<![\w:])(%s|%s)((?:::\w+)+)" % (roots, "|".join(kids) or "$^"), s):
            if any(a <= m.start() < b for a, b in [(x.start(), x.end()) for x in re.finditer(r"(?<![\w:])use\s+[^;]*;", s)]):
                continue
            found.append((m.start(), [m.group(1)] + m.group(2).strip(":").split("::")))
        for pos, p in found:
            if p[0] == "gitmoxi": p = ["crate"] + p[1:]
            if p[0] in kids: p = ["self"] + p
            if p[0] not in ("crate", "super", "self"): continue
            p = [x for x in p if x not in ("*",)]
            if p[-1] == "self": p = p[:-1]
            to = resolve(p, cur(pos))
            if to and to != f: edges[(f, to)].append((line(pos), "::".join(p)))
    for (a, b), where in sorted(edges.items()):
        fa, fb = floor(a), floor(b)
        if fa is None or fb is None:
            problems.append(f"{a if fa is None else b}: not in a floor directory ({', '.join(FLOORS)})")
        elif b == "lib.rs" and a == "main.rs":
            continue
        elif fb == len(FLOORS) and b == "lib.rs":
            for ln, path in where:
                problems.append(f"src/{a}:{ln}: {path} is an old path (a re-export in lib.rs for code outside the crate); name the floor (crate::base, io, integrations, runtime or edge)")
        elif fb > fa:
            for ln, path in where:
                problems.append(f"src/{a}:{ln}: {path} points up, from {FLOORS[fa]} to {FLOORS[fb]} (src/{b})")
    graph = collections.defaultdict(set)
    for a, b in edges:
        if b != "lib.rs":  # an old path is reported above; the re-exports would join every file in one circle
            graph[a].add(b)
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in sorted(graph[v]):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            comps.append(sorted(comp))
    for v in sorted(set(graph) | {b for bs in graph.values() for b in bs}):
        if v not in index: visit(v)
    for comp in comps:
        if len(comp) > 2:
            inside = "; ".join(f"{a} -> {b} (line {edges[(a, b)][0][0]})" for a in comp for b in sorted(graph[a]) if b in comp)
            problems.append(f"a circle of {len(comp)} files: {inside}")
    for p in sorted(set(problems)): print(p, file=sys.stderr)
    if problems:
        print(f"floors: {len(set(problems))} problem(s)", file=sys.stderr); return 1
    print(f"floors: {len(edges)} file dependencies, all down or level, no circle of more than two files")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
