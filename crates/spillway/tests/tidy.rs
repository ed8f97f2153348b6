//! House rules, checked over the whole workspace: every Rust source starts with a `//!` line
//! saying what it is; no `dbg!`, `todo!` or ignored tests anywhere; no source file over
//! [`MAX_LINES`] lines; no module, file or crate named like a junk drawer (`utils`, `helpers`,
//! `common`, ...); the crate graph keeps the invariants ARCHITECTURE.md states; and every
//! relative link in the Markdown files leads somewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `path` relative to the workspace root, for messages.
fn rel(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

/// Every file under `dir` whose name ends with `suffix`, skipping `target` and hidden directories.
fn files_ending_with(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files_ending_with(&path, suffix, out);
            }
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

/// Every Rust source of the workspace and of `fuzz/`.
fn rust_sources() -> Vec<PathBuf> {
    let root = root();
    let mut files = Vec::new();
    for dir in ["crates", "benches", "fuzz"] {
        files_ending_with(&root.join(dir), ".rs", &mut files);
    }
    assert!(files.len() > 20, "found only {} sources", files.len());
    files.sort();
    files
}

#[test]
fn sources_follow_the_house_rules() {
    let banned = [concat!("dbg", "!("), concat!("todo", "!("), concat!("#[", "ignore")];
    let mut problems = Vec::new();
    for file in &rust_sources() {
        let text = std::fs::read_to_string(file).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!("{}: does not start with a //! line", rel(file)));
        }
        for needle in banned {
            if text.contains(needle) {
                problems.push(format!("{}: contains {needle}", rel(file)));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The most lines a source file may have: a longer one is split by what its parts do.
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_over_600_lines() {
    let mut problems = Vec::new();
    for file in &rust_sources() {
        let lines = std::fs::read_to_string(file).unwrap().lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{}: {lines} lines", rel(file)));
        }
    }
    assert!(
        problems.is_empty(),
        "source files over {MAX_LINES} lines (split each by what its parts do):\n{}",
        problems.join("\n")
    );
}

/// Names that say where code sits rather than what it does. The one exception is the
/// conventional integration-test support module, a crate's `tests/common/mod.rs`.
const JUNK_DRAWER_NAMES: &[&str] = &["utils", "util", "helpers", "helper", "common"];

/// Whether `dir` is a crate's `tests/common`, the conventional integration-test support module.
fn is_test_support_dir(dir: &Path) -> bool {
    let parent = dir.parent().unwrap();
    dir.file_name().is_some_and(|name| name == "common")
        && parent.file_name().is_some_and(|name| name == "tests")
        && parent.parent().unwrap().join("Cargo.toml").is_file()
}

/// The module a line declares (`mod x;`, `pub(crate) mod x {`, `#[cfg(test)] mod x`), if any,
/// with whether it is declared out of line (`;`).
fn declared_module(line: &str) -> Option<(&str, bool)> {
    let mut rest = line.trim_start();
    while rest.starts_with("#[") {
        rest = rest[rest.find(']')? + 1..].trim_start();
    }
    if let Some(after) = rest.strip_prefix("pub") {
        rest = match after.strip_prefix('(') {
            Some(scope) => scope[scope.find(')')? + 1..].trim_start(),
            None => after.trim_start(),
        };
    }
    let rest = rest.strip_prefix("mod ")?.trim_start();
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    Some((&rest[..end], rest[end..].trim_start().starts_with(';')))
}

#[test]
fn no_module_file_or_crate_is_named_utils_helpers_or_common() {
    let root = root();
    let mut problems = BTreeSet::new();
    let junk = |name: &str| JUNK_DRAWER_NAMES.contains(&name);
    let junk_words = |name: &str| name.split(['-', '_']).any(junk);

    let mut crate_dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    crate_dirs.extend(workspace_members().into_keys());
    for dir in crate_dirs {
        if junk_words(&dir.file_name().unwrap().to_string_lossy()) {
            problems.insert(format!("{}: a crate directory named like a junk drawer", rel(&dir)));
        }
    }
    for member in workspace_members().values() {
        if junk_words(&member.name) {
            problems.insert(format!("crate `{}`: named like a junk drawer", member.name));
        }
    }

    for file in &rust_sources() {
        let stem = file.file_stem().unwrap().to_string_lossy();
        if junk(&stem) {
            problems.insert(format!("{}: a module file named `{stem}`", rel(file)));
        }
        for dir in file.parent().unwrap().ancestors().take_while(|dir| *dir != root) {
            let name = dir.file_name().unwrap().to_string_lossy();
            if junk(&name) && !is_test_support_dir(dir) {
                problems.insert(format!("{}: a module directory named `{name}`", rel(dir)));
            }
        }
        let support = file.parent().unwrap().join("common");
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let Some((name, out_of_line)) = declared_module(line) else { continue };
            let allowed =
                out_of_line && is_test_support_dir(&support) && support.join("mod.rs").is_file();
            if junk(name) && !allowed {
                problems.insert(format!("{}:{}: declares `mod {name}`", rel(file), number + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "junk-drawer names ({}; only a crate's tests/common/mod.rs may be called that); \
         name each by what it does:\n{}",
        JUNK_DRAWER_NAMES.join(", "),
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Stands for every workspace crate in [`CRATE_GRAPH`] (other than the crate itself).
const ANY: &str = "*";

/// The crates that make up the product, as opposed to test and bench support.
const PRODUCT: &[&str] = &["record", "ingest", "pipeline", "control", "listener", "spillway"];

/// Crates [`CRATE_GRAPH`] names that the workspace need not have.
const OPTIONAL_CRATES: &[&str] = &[];

/// The crate graph's invariants, as ARCHITECTURE.md states them: these crates -> the workspace
/// crates they must not have among their `[dependencies]` (target-specific ones included;
/// dev-dependencies may, for tests), and why.
#[rustfmt::skip]
const CRATE_GRAPH: &[(&[&str], &[&str], &str)] = &[
    // these crates must not depend on                   because
    (&["record"],   &[ANY],                              "the bottom of the graph"),
    (&["listener"], &[ANY],                              "generic plumbing for both listeners"),
    (&["ingest"],   &["pipeline"],                       "it sees the pipeline as `dyn Dispatch`"),
    (&["pipeline"], &["ingest"],                         "it knows nothing of HTTP"),
    (&["control"],  &["ingest", "pipeline"],             "it never touches records"),
    (&[ANY],        &["spillway"],                       "the binary is the top of the graph"),
    (PRODUCT,       &["vercel-sim", "spillway-benches", "testkit"], "test support only"),
];

/// A workspace member.
#[derive(Debug)]
struct Member {
    name: String,
    manifest: toml::Table,
}

fn read_manifest(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", rel(path)))
}

/// The workspace members, by canonical directory, as the root manifest's `workspace.members`
/// (plain paths and `dir/*`) and `workspace.exclude` list them.
fn workspace_members() -> BTreeMap<PathBuf, Member> {
    let root = root();
    let workspace = read_manifest(&root.join("Cargo.toml"))["workspace"].clone();
    let list = |key: &str| -> Vec<String> {
        let Some(values) = workspace.get(key) else { return Vec::new() };
        values.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let excluded: Vec<PathBuf> = list("exclude").iter().map(|dir| root.join(dir)).collect();
    let mut dirs = Vec::new();
    for pattern in list("members") {
        if let Some(parent) = pattern.strip_suffix("/*") {
            for entry in std::fs::read_dir(root.join(parent)).unwrap() {
                dirs.push(entry.unwrap().path());
            }
        } else {
            assert!(!pattern.contains(['*', '?', '[']), "tidy cannot expand member `{pattern}`");
            dirs.push(root.join(pattern));
        }
    }
    let mut members = BTreeMap::new();
    for dir in dirs {
        if excluded.contains(&dir) || !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let manifest = read_manifest(&dir.join("Cargo.toml"));
        let name = manifest["package"]["name"].as_str().unwrap().to_owned();
        members.insert(dir.canonicalize().unwrap(), Member { name, manifest });
    }
    members
}

/// The workspace crates among `member`'s `[dependencies]` and `[target.*.dependencies]`:
/// path dependencies (directly or through `workspace = true`) into a member's directory.
fn workspace_dependencies(
    dir: &Path,
    member: &Member,
    members: &BTreeMap<PathBuf, Member>,
) -> BTreeSet<String> {
    let root = root();
    let workspace_deps = read_manifest(&root.join("Cargo.toml"))["workspace"]
        .get("dependencies")
        .and_then(|deps| deps.as_table().cloned())
        .unwrap_or_default();
    let mut tables: Vec<&toml::Table> = Vec::new();
    if let Some(deps) = member.manifest.get("dependencies") {
        tables.push(deps.as_table().unwrap());
    }
    if let Some(targets) = member.manifest.get("target").and_then(|t| t.as_table()) {
        for target in targets.values() {
            if let Some(deps) = target.get("dependencies") {
                tables.push(deps.as_table().unwrap());
            }
        }
    }
    let mut found = BTreeSet::new();
    for (key, spec) in tables.into_iter().flatten() {
        let inherited = spec.get("workspace").and_then(|w| w.as_bool()) == Some(true);
        let (base, spec) = if inherited {
            (root.as_path(), workspace_deps.get(key).unwrap_or(spec))
        } else {
            (dir, spec)
        };
        let Some(path) = spec.get("path").and_then(|p| p.as_str()) else { continue };
        let Ok(target) = base.join(path).canonicalize() else { continue };
        if let Some(dependency) = members.get(&target) {
            found.insert(dependency.name.clone());
        }
    }
    found
}

#[test]
fn the_crate_graph_keeps_the_architecture_invariants() {
    let members = workspace_members();
    let names: BTreeSet<&str> = members.values().map(|m| m.name.as_str()).collect();
    assert!(names.contains("spillway") && names.len() >= 5, "found only crates {names:?}");
    let mut problems = BTreeSet::new();
    for (crates, forbidden, _) in CRATE_GRAPH {
        for name in crates.iter().chain(forbidden.iter()) {
            if *name != ANY && !names.contains(name) && !OPTIONAL_CRATES.contains(name) {
                problems.insert(format!("CRATE_GRAPH names `{name}`, not a workspace crate"));
            }
        }
    }
    for (dir, member) in &members {
        for dependency in workspace_dependencies(dir, member, &members) {
            let broken: Vec<&str> = CRATE_GRAPH
                .iter()
                .filter(|(crates, forbidden, _)| {
                    (crates.contains(&ANY) || crates.contains(&member.name.as_str()))
                        && (forbidden.contains(&ANY) || forbidden.contains(&dependency.as_str()))
                        && dependency != member.name
                })
                .map(|(_, _, why)| *why)
                .collect();
            if !broken.is_empty() {
                problems.insert(format!(
                    "{}: `{}` must not depend on `{dependency}` ({})",
                    rel(&dir.join("Cargo.toml")),
                    member.name,
                    broken.join("; ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the crate graph breaks the invariants of ARCHITECTURE.md:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The targets of the relative links (`[text](path)`, `[text](path#anchor)`) in Markdown
/// `text`, with their line numbers; code blocks and code spans are skipped.
fn relative_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_fence = false;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Outside code spans: the even pieces between backticks.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            rest = &rest[end..];
            let external = ["http:", "https:", "mailto:"].iter().any(|s| target.starts_with(s));
            if !(target.is_empty() || target.starts_with('#') || external) {
                links.push((number + 1, target.to_owned()));
            }
        }
    }
    links
}

#[test]
fn relative_links_in_markdown_resolve() {
    let root = root();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "md") {
            docs.push(path);
        }
    }
    for dir in ["docs", "deploy", "fixtures", "crates", "benches"] {
        files_ending_with(&root.join(dir), ".md", &mut docs);
    }
    assert!(docs.iter().any(|doc| doc.ends_with("README.md")), "found no README.md");
    docs.sort();
    let mut problems = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (number, target) in relative_links(&text) {
            let path = target.split(['#', '?']).next().unwrap().replace("%20", " ");
            let resolved = match path.strip_prefix('/') {
                Some(from_root) => root.join(from_root),
                None => doc.parent().unwrap().join(&path),
            };
            if !resolved.exists() {
                problems.push(format!("{}:{number}: ({target}) leads nowhere", rel(doc)));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "relative links in Markdown that resolve to no file or directory:\n{}",
        problems.join("\n")
    );
}
