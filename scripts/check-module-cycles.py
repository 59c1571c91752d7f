#!/usr/bin/env python3
"""Fails when modules of one crate import each other in a circle.

Cargo already keeps crates acyclic; inside a crate nothing does. This reads every `.rs`
file under the given source roots, finds each path that starts with `crate::`, `super::`
or `self::` (in `use` trees and inline), resolves it to the file of the module it names,
and builds a file graph. An edge A -> B counts at the level of A's and B's lowest common
ancestor module P, between the children of P that hold them (P's own file, `mod.rs` or
`lib.rs`, is a node of its own there). Any strongly connected group of two or more nodes
at any level is a circle: `embed` <-> `hand`, `extract.rs` <-> `backbone_session.rs`, or a
`mod.rs` that re-exports a child which imports something back from that `mod.rs`.

Usage: scripts/check-module-cycles.py [SRC_DIR ...]  (default: every crate's src/)
"""
import os
import re
import sys
from pathlib import Path

SELF = "<self>"


def strip_comments_and_strings(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def crates_in(src):
    """One {module path (tuple) -> file} per crate rooted in `src`: the library, and the
    binary of `main.rs` with the modules it declares itself."""
    mods = module_files(src)
    lib, main = src / "lib.rs", src / "main.rs"
    if not (lib.exists() and main.exists()):
        return [mods]
    own = set(re.findall(r"^\s*(?:pub\s+)?mod\s+(\w+)\s*;", main.read_text(), flags=re.M))
    bin_mods = {m: f for m, f in mods.items() if m and m[0] in own}
    bin_mods[()] = main
    lib_mods = {m: f for m, f in mods.items() if not (m and m[0] in own)}
    lib_mods[()] = lib
    return [lib_mods, bin_mods]


def module_files(src):
    """Module path (tuple) -> file, for one crate's source folder."""
    mods = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts == ["lib"] or parts == ["main"]:
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        if parts and parts[0] == "bin":
            continue  # each binary is a crate of its own
        mods[tuple(parts)] = path
    return mods


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (each a list of segments)."""
    tree = tree.strip()
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            prefix = tree[:i].rstrip(":").strip()
            inner = tree[i + 1 : tree.rindex("}")]
            out = []
            for part in split_top_level(inner):
                for rest in expand_use_tree(part):
                    out.append(([prefix] if prefix else []) + rest)
            return [[s for seg in p for s in seg.split("::") if s] for p in out]
    tree = re.sub(r"\s+as\s+\w+$", "", tree)
    return [[s.strip() for s in tree.split("::") if s.strip()]] if tree else []


def split_top_level(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def inline_module_spans(code):
    """(start, end) offsets of inline `mod name { ... }` blocks: `super` inside means the file."""
    spans = []
    for m in re.finditer(r"\bmod\s+\w+\s*\{", code):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        spans.append((m.start(), i))
    return spans


def paths_in(code, children):
    """(offset, segments) of every path in the file that may name a module of this crate:
    from `crate`, `super` or `self`, or (2018 relative paths) from a child module's name."""
    starts = {"crate", "super", "self"} | children
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        for segs in expand_use_tree(m.group(1)):
            if segs and segs[0] in starts:
                found.append((m.start(), segs))
    uses = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]+;", code)]
    first = "|".join(sorted(re.escape(s) for s in starts))
    for m in re.finditer(r"(?<![\w:])((?:%s)(?:::\w+)+)" % first, code):
        if any(a <= m.start() < b for a, b in uses):
            continue
        found.append((m.start(), m.group(1).split("::")))
    return found


def relative_to(segs):
    """A 2018 relative path (`child::x`) is a `self::` path."""
    return segs if segs[0] in ("crate", "super", "self") else ["self"] + segs


def resolve(segs, here, mods, in_inline_module):
    segs = relative_to(segs)
    base = list(here)
    i = 0
    if segs[0] == "crate":
        base, i = [], 1
    while i < len(segs) and segs[i] in ("super", "self"):
        if segs[i] == "super" and not (in_inline_module and i == 0):
            base = base[:-1]
        i += 1
    full = base + segs[i:]
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in mods:
            return tuple(full[:n])
    return None


def graph(mods):
    edges = set()
    for mod, path in mods.items():
        code = strip_comments_and_strings(path.read_text())
        spans = inline_module_spans(code)
        children = {m[-1] for m in mods if len(m) == len(mod) + 1 and m[:-1] == mod}
        for offset, segs in paths_in(code, children):
            inline = any(a <= offset < b for a, b in spans)
            target = resolve(segs, mod, mods, inline)
            if target is not None and target != mod:
                edges.add((mod, target))
    return mods, edges


def sibling_edges(edges):
    """Edge (a, b) -> (parent, node_a, node_b) at their lowest common ancestor."""
    out = set()
    for a, b in edges:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        parent = a[:n]
        na = a[n] if len(a) > n else SELF
        nb = b[n] if len(b) > n else SELF
        out.add((parent, na, nb))
    return out


def strongly_connected(nodes, succ):
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return [c for c in comps if len(c) > 1]


def circles(src):
    total, found = 0, []
    for mods in crates_in(src):
        n, f = crate_circles(src, mods)
        total, found = total + n, found + f
    return total, found


def crate_circles(src, mods):
    mods, edges = graph(mods)
    by_parent = {}
    for parent, a, b in sibling_edges(edges):
        by_parent.setdefault(parent, {}).setdefault(a, set()).add(b)
    found = []
    for parent, succ in sorted(by_parent.items()):
        nodes = sorted(set(succ) | {w for ws in succ.values() for w in ws})
        for comp in strongly_connected(nodes, succ):
            where = "::".join(parent) or "crate"
            found.append(f"{src}: in {where}: " + " <-> ".join(sorted(comp)))
    return len(mods), found


def default_roots(top):
    roots = []
    for cargo in sorted(top.rglob("Cargo.toml")):
        if any(p in ("target", "fuzz") or p.startswith(".") for p in cargo.relative_to(top).parts):
            continue
        if (cargo.parent / "src").is_dir():
            roots.append(cargo.parent / "src")
    return roots


def main():
    top = Path(__file__).resolve().parent.parent
    roots = [Path(a) for a in sys.argv[1:]] or default_roots(top)
    total, problems = 0, []
    for src in roots:
        n, found = circles(src)
        total += n
        problems += found
    for p in problems:
        print("module circle:", p)
    print(f"check-module-cycles: {total} modules in {len(roots)} crates, {len(problems)} circles")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
