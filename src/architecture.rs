//! The module picture kept true: ARCHITECTURE.md's "What may depend on what" block lists, for
//! every top-level module, the modules of this crate it uses; this test reads the code and fails
//! when the two differ, when the pure core reaches a module that does I/O or wiring (or an I/O
//! crate), or when modules depend on each other in a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure core: decisions that take values and `now` and return values.
const CORE: &[&str] = &[
    "guard",
    "score",
    "route",
    "corrections",
    "tickets",
    "sla",
    "digest",
    "alerts",
];

/// Modules that do I/O or wire tasks together: the core reaches none of them.
const IO_OR_WIRING: &[&str] = &[
    "store",
    "outbox",
    "smtp",
    "imap",
    "tools",
    "notices",
    "health",
    "http",
    "daemon",
    "reload",
    "templates",
    "pipeline",
    "clock",
    "config",
    "metrics",
    "tls",
];

/// Crates that do I/O: the core names none of them.
const IO_CRATES: &[&str] = &[
    "tokio::",
    "rusqlite::",
    "lettre::",
    "async_imap::",
    "hyper::",
    "minijinja::",
    "std::fs::",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules: `src/NAME.rs` or `src/NAME/`, without the crate roots and this file.
fn modules() -> BTreeSet<String> {
    std::fs::read_dir(src())
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            let rs = p.extension().is_some_and(|e| e == "rs");
            (p.is_dir() || rs).then_some(name)
        })
        .filter(|n| !matches!(n.as_str(), "lib" | "main" | "architecture"))
        .collect()
}

/// The non-test source files of a module.
fn files(module: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).expect("read module dir") {
            let p = e.expect("dir entry").path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                if name != "tests" && name != "golden" {
                    dirs.push(p);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The code of a file, comments and the inline test module left out, one entry per line.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).expect("read source");
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|(_, l)| l.trim().starts_with("mod tests"))
        {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push((n + 1, code.to_string()));
    }
    out
}

/// Module -> the modules of this crate it names (`crate::NAME`), from the code.
fn actual() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut graph = BTreeMap::new();
    for m in &mods {
        let mut deps = BTreeSet::new();
        for f in files(m) {
            for (_, code) in code_lines(&f) {
                for (i, _) in code.match_indices("crate::") {
                    let rest = &code[i + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != *m && mods.contains(&name) {
                        deps.insert(name);
                    }
                }
            }
        }
        graph.insert(m.clone(), deps);
    }
    graph
}

/// Module -> allowed modules, from ARCHITECTURE.md's block `NAME: DEP DEP ...`.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).expect("read ARCHITECTURE.md");
    let start = text
        .find("## What may depend on what")
        .expect("ARCHITECTURE.md has a \"What may depend on what\" section");
    let block = text[start..]
        .split("```")
        .nth(1)
        .expect("the section holds a fenced block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with("text"))
        .map(|l| {
            let (name, deps) = l.split_once(':').unwrap_or((l, ""));
            (
                name.trim().to_string(),
                deps.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// The modules that depend on each other in a loop (strongly connected, more than one).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for m in graph.keys() {
        let loop_: BTreeSet<String> = reachable[m]
            .iter()
            .filter(|d| *d != m && reachable[d].contains(m))
            .cloned()
            .chain([m.clone()])
            .collect();
        if loop_.len() > 1 && !out.contains(&loop_) {
            out.push(loop_);
        }
    }
    out
}

#[test]
fn architecture_md_names_every_dependency_between_modules() {
    let actual = actual();
    let documented = documented();
    let mut problems = Vec::new();
    for (m, deps) in &actual {
        match documented.get(m) {
            None => problems.push(format!("{m}: not in ARCHITECTURE.md (uses {deps:?})")),
            Some(doc) if doc != deps => problems.push(format!(
                "{m}: the code uses {deps:?}, ARCHITECTURE.md says {doc:?}"
            )),
            Some(_) => {}
        }
    }
    for m in documented.keys() {
        if !actual.contains_key(m) {
            problems.push(format!("{m}: in ARCHITECTURE.md, but no such module"));
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md and the code differ; change one of them:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_core_reaches_no_io_or_wiring() {
    let mut found = Vec::new();
    for m in CORE {
        for f in files(m) {
            for (n, code) in code_lines(&f) {
                for bad in IO_OR_WIRING {
                    if code.contains(&format!("crate::{bad}::"))
                        || code.contains(&format!("crate::{bad};"))
                    {
                        found.push(format!("{}:{n}: crate::{bad}", f.display()));
                    }
                }
                for bad in IO_CRATES {
                    let at_start = code.trim_start().starts_with(bad);
                    let inside =
                        code.contains(&format!(" {bad}")) || code.contains(&format!("({bad}"));
                    if at_start || inside {
                        found.push(format!("{}:{n}: {bad}", f.display()));
                    }
                }
            }
        }
    }
    assert!(
        files("score").len() > 3 && files("tickets").len() == 1,
        "the core's files are found"
    );
    assert!(
        found.is_empty(),
        "the core reaches I/O or wiring:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_modules_depend_on_each_other_in_a_loop() {
    let loops = cycles(&actual());
    assert!(loops.is_empty(), "modules in a loop: {loops:?}");
}

#[test]
fn the_checks_see_a_loop_and_a_forbidden_import() {
    // The checks themselves: a loop is found, and the scan reads `crate::NAME` in code only.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, d)| (m.to_string(), d.into_iter().map(str::to_string).collect()))
    .collect();
    let loops = cycles(&graph);
    assert_eq!(loops.len(), 1);
    assert_eq!(loops[0].len(), 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let f = dir.path().join("x.rs");
    std::fs::write(
        &f,
        "//! see [`crate::store`]\nuse crate::store::Store; // crate::http\n#[cfg(test)]\nmod tests {\n    use crate::imap;\n}\n",
    )
    .expect("write");
    let code: Vec<String> = code_lines(&f).into_iter().map(|(_, c)| c).collect();
    let joined = code.join("\n");
    assert!(joined.contains("crate::store::Store"));
    assert!(!joined.contains("crate::http") && !joined.contains("crate::imap"));
}
