#!/usr/bin/env python3
"""What the published crate pulls in, checked from `cargo metadata` (what `cargo deny check
licenses bans sources` would check, without installing it): every package the library and the
CLI depend on (normal and build dependencies, every feature, Linux) comes from crates.io and has a
licence the allow list satisfies; crates present at two versions are listed (not an error: some
come with the Azure SDK). Advisories need the RustSec database, which this machine cannot fetch:
`cargo deny check advisories` on a networked CI (see CONTRIBUTING).
"""
import json
import re
import subprocess
import sys

ALLOWED = {
    "MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause", "BSD-3-Clause", "ISC",
    "Unicode-3.0", "Unicode-DFS-2016", "Zlib", "CC0-1.0", "BSL-1.0", "MPL-2.0", "0BSD", "Unlicense",
}
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
ROOT = "eventhub-checkpointstore"


def allowed(expression):
    """Whether an SPDX expression (OR, AND, WITH, parentheses) is satisfied by the allow list."""
    expression = expression.replace("/", " OR ")  # old crates.io style "MIT/Apache-2.0"
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.\-+]+(?:\s+WITH\s+[A-Za-z0-9.\-+]+)?", expression)
    python = []
    for token in tokens:
        if token in ("(", ")"):
            python.append(token)
        elif token == "OR":
            python.append(" or ")
        elif token == "AND":
            python.append(" and ")
        else:
            python.append(str(token in ALLOWED or token.split(" WITH ")[0] in ALLOWED))
    try:
        return bool(eval("".join(python), {"__builtins__": {}}))  # only True/False/and/or/()
    except SyntaxError:
        return False


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked",
         "--filter-platform", "x86_64-unknown-linux-gnu"]))
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p["id"] for p in meta["packages"] if p["name"] == ROOT and p["source"] is None)
    seen, todo = set(), [root]
    while todo:
        node = nodes[todo.pop()]
        if node["id"] in seen:
            continue
        seen.add(node["id"])
        for dep in node["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"}:
                todo.append(dep["pkg"])
    problems, versions = [], {}
    for pid in sorted(seen - {root}, key=lambda i: packages[i]["name"]):
        p = packages[pid]
        versions.setdefault(p["name"], []).append(p["version"])
        if p["source"] != CRATES_IO:
            problems.append(f"{p['name']} {p['version']}: from {p['source']}, not crates.io")
        licence = p.get("license")
        if not licence or not allowed(licence):
            problems.append(f"{p['name']} {p['version']}: licence {licence!r} not in the allow list")
    twice = {name: v for name, v in versions.items() if len(v) > 1}
    print(f"deps-check: {len(seen) - 1} packages in the published crate's tree (every feature)")
    if twice:
        print("deps-check: at two versions: " + ", ".join(f"{n} {'/'.join(v)}" for n, v in sorted(twice.items())))
    for problem in problems:
        print(f"deps-check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
