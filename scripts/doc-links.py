#!/usr/bin/env python3
"""Checks the crate's generated docs (target/doc) for what `cargo doc -D warnings` lets through:
links into other crates that rustdoc could not resolve, which render as literal brackets or as
an href naming a Rust path, and relative hrefs to pages that do not exist (with `--no-deps`,
every link into a dependency's pages is one, so such links must be absolute URLs)."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/doc")
crate = root / "eventhub_checkpointstore"
if not crate.is_dir():
    sys.exit(f"doc-links: {crate} not found; run cargo doc first")

href = re.compile(r'href="([^"#?]*)(?:#[^"]*)?"')
problems = []
pages = 0
for page in sorted(crate.rglob("*.html")):
    pages += 1
    text = page.read_text(encoding="utf-8")
    name = page.relative_to(root)
    # This crate's own docs: not the sidebar, and not the docs of other crates' traits that
    # rustdoc copies into each type's page (blanket implementations such as tracing's
    # `Instrument`, whose own links do not resolve here).
    body = text.split('<section id="main-content"', 1)[-1]
    for section in ("trait-implementations", "synthetic-implementations", "blanket-implementations"):
        body = body.split(f'<h2 id="{section}"', 1)[0]
    if "/src/" in str(page):
        continue
    for target in href.findall(body):
        if not target or "://" in target or target.startswith(("mailto:", "javascript:")):
            continue
        if "::" in target:
            problems.append(f"{name}: href names a Rust path, not a page: {target}")
        elif not (page.parent / target).resolve().exists():
            problems.append(f"{name}: href to a missing page: {target}")
    for literal in re.findall(r"\[<code>[^<]*</code>\](?!\()", body):
        problems.append(f"{name}: unresolved link rendered literally: {literal}")

if pages == 0:
    sys.exit("doc-links: no pages found")
if problems:
    print("\n".join(problems))
    sys.exit(f"doc-links: {len(problems)} broken links in {pages} pages")
print(f"doc-links: {pages} pages, no broken links")
