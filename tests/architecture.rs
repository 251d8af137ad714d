//! The rules of our architecture (docs/architecture.md), checked on the source text so a
//! change that breaks one fails here: nothing below the commands reads the command line,
//! targets and sources do not know each other, the manifest knows no config, the
//! modules import each other without a loop, and every file is small and says what it
//! owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file under `src/`, by its path relative to `src/`, with its code (comments out).
fn files() -> BTreeMap<String, String> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let code: String = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            (rel, code)
        })
        .collect()
}

/// The top-level module a file belongs to: `source/sqlite/mod.rs` → `source`.
fn module_of(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

/// Every `crate::a::b…` path a file names, as its segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `r2migrate::crate` cannot occur; skip identifiers that merely end in "crate".
        if at > 0 {
            let before = code.as_bytes()[at - 1];
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue;
            }
        }
        let rest = &code[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<String> = path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if !segments.is_empty() {
            out.push(segments);
        }
    }
    out
}

/// What each top-level module imports from the others.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in files() {
        let from = module_of(&rel);
        let edges = graph.entry(from.clone()).or_default();
        for path in crate_paths(&code) {
            if path[0] != from {
                edges.insert(path[0].clone());
            }
        }
    }
    graph
}

#[test]
fn nothing_below_the_commands_reads_the_command_line() {
    let allowed = ["main.rs", "lib.rs", "cli.rs", "resolve.rs"];
    let offenders: Vec<String> = files()
        .into_iter()
        .filter(|(rel, _)| !allowed.contains(&rel.as_str()))
        .filter(|(_, code)| crate_paths(code).iter().any(|p| p[0] == "cli"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        offenders.is_empty(),
        "these import crate::cli: {offenders:?}"
    );
}

#[test]
fn targets_and_sources_do_not_know_each_other_and_the_manifest_knows_no_config() {
    let rules = [
        ("target/", "source"),
        ("source/", "target"),
        ("source/", "config"),
        ("source/", "manifest"),
        ("manifest.rs", "config"),
        ("object.rs", "source"),
        ("object.rs", "target"),
    ];
    let mut broken = Vec::new();
    for (rel, code) in files() {
        for (prefix, forbidden) in rules {
            if rel.starts_with(prefix) && crate_paths(&code).iter().any(|p| p[0] == forbidden) {
                broken.push(format!("{rel} imports crate::{forbidden}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

/// A loop in the graph, as the modules it passes through, if there is one.
fn find_loop(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_without_a_loop() {
    if let Some(cycle) = find_loop(&module_graph()) {
        panic!("import loop: {}", cycle.join(" → "));
    }
}

#[test]
fn the_checker_reads_paths_and_finds_loops() {
    let paths = crate_paths("use crate::b::Thing;\nfn f() { crate::c::g(); }");
    assert_eq!(paths, vec![vec!["b", "Thing"], vec!["c", "g"]]);
    assert!(crate_paths("let notcrate::x = 1;").is_empty());
    assert_eq!(module_of("source/sqlite/mod.rs"), "source");
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(find_loop(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_loop(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn every_file_is_small_and_says_what_it_owns() {
    let mut problems = Vec::new();
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(src()).unwrap().display().to_string();
        let lines = text.lines().count();
        if lines >= 600 {
            problems.push(format!("{name}: {lines} lines (keep files under 600)"));
        }
        if !text.starts_with("//!") {
            problems.push(format!("{name}: does not open with a //! paragraph"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
