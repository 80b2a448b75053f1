//! The README's and the docs' Rust snippets paste into a new project as shown: each is a whole
//! program (a `main`, no lines hidden from readers the way rustdoc hides `# ` lines), and uses
//! only crates the README's install section or the page's `Cargo.toml` lines name. They are also
//! compiled, and those that need no service run, as doc tests (`src/lib.rs` includes every page
//! but docs/metrics.md, whose snippet needs the Prometheus exporter's HTTP listener, a feature
//! the dev-dependency leaves off).
//! And every relative link between these pages points at a file that exists.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Markdown pages a reader meets first.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        Path::new(ROOT).join("README.md"),
        Path::new(ROOT).join("CONTRIBUTING.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The fenced blocks of `text` whose info string starts with `rust`: (first line number, code).
fn rust_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match open.as_mut() {
            None if fence => {
                let info = line.trim_start().trim_start_matches('`');
                if info.starts_with("rust") {
                    open = Some((n + 2, String::new()));
                }
            }
            Some(_) if fence => blocks.push(open.take().expect("open")),
            Some((_, code)) => {
                code.push_str(line);
                code.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every snippet either runs here as pasted (a doc test, against the Azurite and the local Event
/// Hubs endpoint that `scripts/test.sh` starts: `src/lib.rs` includes the pages) or is marked
/// `no_run` and says on its first line why it does not: `// Needs ...` (a real namespace, an
/// account, a free port) or `// Runs until Ctrl-C ...`.
#[test]
fn every_snippet_runs_here_or_says_why_not() {
    let mut unexplained = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let mut lines = text.lines().enumerate().peekable();
        while let Some((n, line)) = lines.next() {
            let info = line.trim_start();
            if !info.starts_with("```rust") || !info.contains("no_run") {
                continue;
            }
            let first = lines.peek().map(|(_, l)| l.trim()).unwrap_or_default();
            if !(first.starts_with("// Needs ") || first.starts_with("// Runs until Ctrl-C")) {
                unexplained.push(format!("{}:{}", page.display(), n + 1));
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "no_run snippets that do not say why they cannot run here: {unexplained:?}"
    );
}

/// The snippets that run until Ctrl-C are run too: each is, byte for byte, an example that
/// `scripts/test.sh` runs against the emulators until it has printed what it should, then
/// interrupts (`scripts/run-snippet.sh`), and checks it stopped cleanly.
#[test]
fn every_snippet_that_runs_until_interrupted_is_an_example_that_is_run() {
    let examples: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("examples"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let mut missing = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (line, code) in rust_blocks(&text) {
            if code.starts_with("// Runs until Ctrl-C") && !examples.contains(&code) {
                missing.push(format!("{}:{line}", page.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "snippets that run until Ctrl-C with no identical example in examples/: {missing:?}"
    );
}

/// The crates a snippet names in its `use` lines and paths.
fn crates_used(code: &str) -> Vec<String> {
    let mut crates: Vec<String> = code
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("use "))
        .filter_map(|path| path.split("::").next())
        .map(|name| name.trim_matches(|c| c == '{' || c == ' ').to_owned())
        .collect();
    for known in [
        "tokio::",
        "futures::",
        "azure_identity::",
        "reqwest::",
        "metrics_exporter_prometheus::",
    ] {
        if code.contains(known) {
            crates.push(known.trim_end_matches("::").to_owned());
        }
    }
    crates.sort();
    crates.dedup();
    crates
}

#[test]
fn every_snippet_is_a_whole_program_with_its_dependencies_named() {
    // What a new project's Cargo.toml has, as the README's install section and the pages say.
    let named = [
        "std",
        "eventhub_checkpointstore",
        "tokio",
        "futures",
        "azure_identity",
        "azure_messaging_eventhubs",
        "reqwest",
        "metrics_exporter_prometheus",
    ];
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(ROOT).unwrap().display().to_string();
        for (line, code) in rust_blocks(&text) {
            checked += 1;
            if code.lines().any(|l| l.starts_with("# ") || l == "#") {
                problems.push(format!("{name}:{line}: hides lines from readers (`# `)"));
            }
            if !code.contains("fn main()") {
                problems.push(format!("{name}:{line}: no `fn main()`"));
            }
            if code.contains("#[tokio::main]") && !text.contains("\"macros\", \"rt-multi-thread\"")
            {
                problems.push(format!("{name}:{line}: uses #[tokio::main], the page does not say which tokio features it needs"));
            }
            for krate in crates_used(&code) {
                if !named.contains(&krate.as_str()) {
                    problems.push(format!(
                        "{name}:{line}: uses crate `{krate}`, which no Cargo.toml line names"
                    ));
                }
                let dependency = krate.replace('_', "-");
                let mentioned = text.contains(&format!("{krate} = "))
                    || text.contains(&format!("{dependency} = "))
                    || text.contains(&format!("`{dependency}"))
                    || text.contains(&format!("`{krate}"));
                if !["std", "eventhub_checkpointstore", "tokio"].contains(&krate.as_str())
                    && !mentioned
                {
                    problems.push(format!("{name}:{line}: uses crate `{krate}`, which the page does not tell the reader to add"));
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} snippets found: is the parser broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_relative_link_points_at_a_file() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            if !file.is_empty() && !dir.join(file).exists() {
                broken.push(format!(
                    "{}: {target}",
                    page.strip_prefix(ROOT).unwrap().display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to missing files:\n{}",
        broken.join("\n")
    );
}

/// README's relative links point into the package (`include` in Cargo.toml): on crates.io the
/// README is all a reader has, so a link into a file left out (tests, scripts, benches) is
/// absolute, to the repository.
#[test]
fn readmes_relative_links_point_into_the_package() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let list = &manifest[manifest.find("include = [").expect("an include list")..];
    let list = &list[..list.find(']').unwrap()];
    let included: Vec<&str> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|p| p.trim_start_matches('/'))
        .collect();
    // `dir/*.md` and exact paths are the only shapes the list uses for pages.
    let packaged = |file: &str| {
        included
            .iter()
            .any(|pattern| match pattern.split_once('*') {
                Some((prefix, suffix)) => {
                    file.starts_with(prefix)
                        && file.ends_with(suffix)
                        && !file[prefix.len()..].contains('/')
                }
                None => file == *pattern,
            })
    };
    let text = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut outside = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        let file = target.split('#').next().unwrap_or(target);
        if !target.contains("://") && !file.is_empty() && !packaged(file) {
            outside.push(target.to_owned());
        }
    }
    assert!(
        outside.is_empty(),
        "README links into files the package leaves out: {outside:?}"
    );
    assert!(
        packaged("docs/usage.md") && !packaged("benches/README.md") && !packaged("docs/x/y.md")
    );
}

/// The checks above can fail: a hidden line, a missing `main`, an unnamed crate.
#[test]
fn the_snippet_checks_can_fail() {
    let blocks =
        rust_blocks("text\n```rust,no_run\n# async fn run() {}\nuse serde::Serialize;\n```\n");
    assert_eq!(blocks.len(), 1);
    let (_, code) = &blocks[0];
    assert!(code.lines().any(|l| l.starts_with("# ")));
    assert!(!code.contains("fn main()"));
    assert_eq!(crates_used(code), ["serde"]);
}
