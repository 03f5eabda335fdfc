//! `triaged init DIR`: a starter directory that stands on its own — the shipped example config
//! (every key documented) with its paths pointed inside DIR, the default rule pack and the
//! templates. Everything is embedded at build time, so the binary alone can set up a host.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The shipped example config, rewritten by [`REWRITES`] before it is written.
const EXAMPLE_CONFIG: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/triaged.toml"));

/// `(file name, contents)` of every file in a repository directory. Listed by hand because
/// `include_str!` cannot glob; a unit test fails when the directory and the list differ.
macro_rules! embed {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $file)))),+]
    };
}

/// config/rules/, written to DIR/rules/.
const RULES: &[(&str, &str)] = embed!("config/rules": "default.toml");

/// templates/, written to DIR/templates/.
const TEMPLATES: &[(&str, &str)] = embed!("templates":
    "ack.html", "ack.txt",
    "alert.html", "alert.txt",
    "digest.html", "digest.txt",
    "health.html", "health.txt",
    "holding.html", "holding.txt",
    "survey.html", "survey.txt",
    "verify.html", "verify.txt",
);

/// One line of the example config to change: in `section`, the line whose setting (the text
/// before any `#` comment, trimmed) is exactly `from` gets `to` instead; its comment is kept.
struct Rewrite {
    section: &'static str,
    from: &'static str,
    to: &'static str,
}

/// The example lives in config/ of the repository and points outside it; DIR holds its own.
/// Each must match exactly one line, so a change to the example fails the unit test (and
/// `init` itself) instead of writing a config that points at nothing.
const REWRITES: &[Rewrite] = &[
    Rewrite {
        section: "templates",
        from: r#"dir = "../templates""#,
        to: r#"dir = "templates""#,
    },
    Rewrite {
        section: "store",
        from: r#"path = "/var/lib/triaged/triaged.sqlite""#,
        // The example's path is what contrib/triaged.service provides; keep it in view.
        to: r#"path = "triaged.sqlite"              # as a systemd service (contrib/): "/var/lib/triaged/triaged.sqlite""#,
    },
];

/// The example config with [`REWRITES`] applied, the paths checked, and the "Validate with"
/// line naming `config_path`.
fn starter_config(config_path: &Path) -> Result<String> {
    let mut hits = vec![0usize; REWRITES.len()];
    let mut section = String::new();
    let mut out = String::with_capacity(EXAMPLE_CONFIG.len() + 200);
    for line in EXAMPLE_CONFIG.lines() {
        let setting = line.split('#').next().unwrap_or("").trim();
        if setting.starts_with('[') {
            section = setting.trim_matches(['[', ']']).to_string();
        }
        let mut new = line.to_string();
        if let Some(i) = REWRITES
            .iter()
            .position(|r| r.section == section && r.from == setting)
        {
            hits[i] += 1;
            let r = &REWRITES[i];
            // `from` is the line's setting, so it is in the line; what follows it is a comment.
            let start = line.find(r.from).unwrap_or(0);
            let rest = &line[start + r.from.len()..];
            new = if rest.trim().is_empty() || r.to.contains('#') {
                r.to.to_string()
            } else {
                // Pad a shorter value so the comment stays in its column.
                let pad = " ".repeat(r.from.len().saturating_sub(r.to.len()));
                format!("{}{}{pad}{rest}", &line[..start], r.to)
            };
        } else if line.starts_with("# Validate with:") {
            new = format!(
                "# Validate with:  triaged check --config {}",
                config_path.display()
            );
        }
        out.push_str(&new);
        out.push('\n');
    }
    for (r, n) in REWRITES.iter().zip(&hits) {
        if *n != 1 {
            bail!(
                "The embedded example config has {n} lines `{}` in [{}] (expected one): triaged was built with an example config that `init` does not know how to adapt",
                r.from,
                r.section
            );
        }
    }
    check_paths(&out)?;
    Ok(out)
}

/// Belt and braces over the line rewrites: the paths the written config will actually use
/// (after defaults) all point inside DIR, at what `init` writes there.
fn check_paths(config: &str) -> Result<()> {
    let root: toml::Table = toml::from_str(config).context("Parsing the starter config")?;
    let get = |section: &str, key: &str| {
        root.get(section)
            .and_then(|s| s.get(key))
            .and_then(toml::Value::as_str)
            .map(str::to_string)
    };
    // (section, key, the one value allowed; None: must stay unset). Unset, the rules and
    // templates directories default to "rules" and "templates" next to the file; the store
    // path has no default.
    let want = [
        ("scoring", "rules", Some("rules")),
        ("scoring", "weights", None),
        ("templates", "dir", Some("templates")),
        ("store", "path", Some("triaged.sqlite")),
    ];
    for (section, key, allowed) in want {
        let got = get(section, key);
        let ok = match (&got, allowed) {
            (None, _) => section != "store",
            (Some(v), Some(a)) => v == a,
            (Some(_), None) => false,
        };
        if !ok {
            bail!(
                "The embedded example config sets [{section}] {key} = {got:?}, which `init` does not adapt (expected {})",
                allowed.map_or_else(|| "it unset".to_string(), |a| format!("{a:?}"))
            );
        }
    }
    Ok(())
}

/// Write a starter config and everything it refers to into `dir` (created if missing):
/// `triaged.toml`, `rules/*.toml`, `templates/*`. Existing files are left alone unless `force`;
/// without it, nothing is written when any exists. Returns the text to print: what was
/// written and what to do next. Paths are shown as the user gave `dir`.
pub fn init(dir: &Path, force: bool) -> Result<String> {
    let config_path = dir.join("triaged.toml");
    let mut files: Vec<(PathBuf, String)> =
        vec![(config_path.clone(), starter_config(&config_path)?)];
    for (sub, set) in [("rules", RULES), ("templates", TEMPLATES)] {
        for (name, text) in set {
            files.push((dir.join(sub).join(name), (*text).to_string()));
        }
    }

    let existing: Vec<bool> = files
        .iter()
        .map(|(path, _)| path.symlink_metadata().is_ok())
        .collect();
    let first_existing = files
        .iter()
        .zip(&existing)
        .find_map(|((path, _), was)| was.then_some(path));
    if !force && let Some(path) = first_existing {
        let n = existing.iter().filter(|e| **e).count();
        bail!(
            "{} already exists ({n} of the {} starter files do): nothing written; pass --force to overwrite them",
            path.display(),
            files.len()
        );
    }

    for sub in ["rules", "templates"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("Creating {}", d.display()))?;
    }
    for (path, text) in &files {
        write_file(path, text, force)?;
    }

    let width = files
        .iter()
        .map(|(p, _)| p.display().to_string().len())
        .max()
        .unwrap_or(0);
    let replaced = existing.iter().filter(|e| **e).count();
    let mut out = String::new();
    let _ = write!(out, "Wrote {} files to {}", files.len(), dir.display());
    if replaced > 0 {
        let _ = write!(out, " ({replaced} replaced)");
    }
    out.push_str(":\n");
    for ((path, _), was) in files.iter().zip(&existing) {
        let shown = path.display().to_string();
        if *was {
            let _ = writeln!(out, "  {shown:<width$}  (replaced)");
        } else {
            let _ = writeln!(out, "  {shown}");
        }
    }
    let config = config_path.display();
    out.push_str("\nNext:\n");
    let _ = writeln!(
        out,
        "  1. Edit {config}: [mailbox], [smtp] and [support] (see docs/providers.md for Gmail, Microsoft 365, Fastmail, Dovecot)."
    );
    let _ = writeln!(out, "  2. triaged check --config {config}");
    let _ = writeln!(out, "  3. triaged run --config {config}");
    Ok(out)
}

/// Write one file; without `force` never over an existing one, even one that appeared since
/// the check (`create_new` makes the check and the creation one step).
fn write_file(path: &Path, text: &str, force: bool) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("Creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("Writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn repo_files(dir: &str) -> BTreeSet<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.expect("dir entry"))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn embedded(set: &[(&str, &str)]) -> BTreeSet<String> {
        set.iter().map(|(name, _)| name.to_string()).collect()
    }

    /// A file added to templates/ or config/rules/ must be added to the lists above too, or
    /// `init` would write a directory without it.
    #[test]
    fn every_shipped_file_is_embedded() {
        for (dir, set) in [("templates", TEMPLATES), ("config/rules", RULES)] {
            assert_eq!(
                embedded(set),
                repo_files(dir),
                "the files embedded for {dir}/ (left) differ from the directory (right): update RULES / TEMPLATES in src/tools/init.rs"
            );
        }
    }

    #[test]
    fn each_rewrite_matches_one_line_of_the_example() {
        let text = starter_config(Path::new("/etc/triaged/triaged.toml"))
            .unwrap_or_else(|e| panic!("{e:#}"));
        for r in REWRITES {
            let count = |s: &str, needle: &str| {
                s.lines()
                    .filter(|l| l.split('#').next().unwrap_or("").trim() == needle)
                    .count()
            };
            assert_eq!(count(EXAMPLE_CONFIG, r.from), 1, "example has `{}`", r.from);
            assert_eq!(count(&text, r.from), 0, "`{}` was replaced", r.from);
            let to = r.to.split('#').next().unwrap_or("").trim();
            assert_eq!(count(&text, to), 1, "`{to}` is in the starter config");
        }
        assert!(
            text.contains("# Validate with:  triaged check --config /etc/triaged/triaged.toml\n"),
            "the header names the written file"
        );
        assert_eq!(
            text.lines().count(),
            EXAMPLE_CONFIG.lines().count(),
            "only lines are replaced, none added or lost"
        );
    }

    #[test]
    fn a_kept_comment_stays_in_its_column() {
        let text = starter_config(Path::new("x/triaged.toml")).unwrap_or_else(|e| panic!("{e:#}"));
        let before = EXAMPLE_CONFIG
            .lines()
            .find(|l| l.starts_with(r#"dir = "../templates""#))
            .expect("example line");
        let after = text
            .lines()
            .find(|l| l.starts_with(r#"dir = "templates""#))
            .expect("starter line");
        assert_eq!(before.find('#'), after.find('#'));
        assert_eq!(
            before.split_once('#').map(|s| s.1),
            after.split_once('#').map(|s| s.1)
        );
    }

    #[test]
    fn check_paths_rejects_a_path_pointing_out_of_dir() {
        let good = "[templates]\ndir = \"templates\"\n[store]\npath = \"triaged.sqlite\"\n";
        check_paths(good).unwrap_or_else(|e| panic!("{e:#}"));
        for bad in [
            good.replace("dir = \"templates\"", "dir = \"../templates\""),
            good.replace("triaged.sqlite", "/var/lib/triaged/triaged.sqlite"),
            good.replace("[store]\npath = \"triaged.sqlite\"\n", ""),
            format!("{good}[scoring]\nrules = \"../rules\"\n"),
            format!("{good}[scoring]\nweights = \"weights.toml\"\n"),
        ] {
            assert!(check_paths(&bad).is_err(), "{bad}");
        }
    }
}
