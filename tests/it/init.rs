//! `triaged init DIR`: the starter directory loads as a config on its own, holds the repository's
//! rules and templates byte for byte, and is never overwritten without --force.

use std::collections::BTreeMap;
use std::path::Path;

use triaged::config::Config;
use triaged::tools::init::init;

/// Every file under `dir` (relative path -> bytes), recursively.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("read"),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn repo(dir: &str) -> BTreeMap<String, Vec<u8>> {
    tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
}

#[test]
fn starter_config_loads_and_points_inside_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet, two levels down: init creates it.
    let dir = tmp.path().join("etc/triaged");
    let out = init(&dir, false).unwrap_or_else(|e| panic!("{e:#}"));

    // The example's password source (password_env) is read when the daemon connects, not at
    // load, so the config loads without TRIAGED_IMAP_PASSWORD set.
    let config = Config::load(&dir.join("triaged.toml")).unwrap_or_else(|errs| {
        panic!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(config.store.path, dir.join("triaged.sqlite"));
    assert!(!config.rule_files.is_empty());
    for f in &config.rule_files {
        assert!(f.starts_with(dir.join("rules")), "{}", f.display());
    }
    // Templates come from DIR/templates: the example's "../templates" would not exist here.
    assert!(!tmp.path().join("etc/templates").exists());

    let config_path = dir.join("triaged.toml").display().to_string();
    let files = 1 + repo("config/rules").len() + repo("templates").len();
    assert!(
        out.starts_with(&format!("Wrote {files} files to {}:\n", dir.display())),
        "{out}"
    );
    assert!(out.contains(&format!("  {config_path}\n")), "{out}");
    assert!(!out.contains("replaced"), "{out}");
    assert!(
        out.ends_with(&format!(
            "\nNext:\n  1. Edit {config_path}: [mailbox], [smtp] and [support] (see docs/providers.md for Gmail, Microsoft 365, Fastmail, Dovecot).\n  2. triaged check --config {config_path}\n  3. triaged run --config {config_path}\n"
        )),
        "{out}"
    );
}

#[test]
fn rules_and_templates_equal_the_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path(), false).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(tree(&tmp.path().join("rules")), repo("config/rules"));
    assert_eq!(tree(&tmp.path().join("templates")), repo("templates"));
    let written = tree(tmp.path());
    let expected = 1 + repo("config/rules").len() + repo("templates").len();
    assert_eq!(written.len(), expected, "{:?}", written.keys());
}

#[test]
fn second_init_refuses_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init(dir, false).unwrap_or_else(|e| panic!("{e:#}"));
    // An edited config and a template the user removed: neither may be touched.
    std::fs::write(dir.join("triaged.toml"), "# mine\n").expect("write");
    std::fs::remove_file(dir.join("templates/survey.html")).expect("rm");
    let before = tree(dir);

    let err = init(dir, false).expect_err("second init must refuse");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(&format!(
            "{} already exists",
            dir.join("triaged.toml").display()
        )),
        "{msg}"
    );
    assert!(msg.contains("--force"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert_eq!(tree(dir), before, "nothing changed");
}

#[test]
fn refuses_when_only_a_later_file_exists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("templates")).expect("mkdir");
    std::fs::write(dir.join("templates/ack.txt"), "my ack").expect("write");

    let msg = format!("{:#}", init(dir, false).expect_err("must refuse"));
    assert!(
        msg.starts_with(&format!(
            "{} already exists",
            dir.join("templates/ack.txt").display()
        )),
        "{msg}"
    );
    assert!(!dir.join("triaged.toml").exists(), "nothing written");
    assert_eq!(
        std::fs::read(dir.join("templates/ack.txt")).expect("read"),
        b"my ack"
    );
}

#[test]
fn force_rewrites_and_says_what_it_replaced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init(dir, false).unwrap_or_else(|e| panic!("{e:#}"));
    let fresh = tree(dir);
    std::fs::write(dir.join("triaged.toml"), "# mine\n").expect("write");
    std::fs::remove_file(dir.join("templates/survey.html")).expect("rm");

    let out = init(dir, true).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(tree(dir), fresh, "every file as a fresh init writes it");
    let files = 1 + repo("config/rules").len() + repo("templates").len();
    assert!(out.contains(&format!("({} replaced)", files - 1)), "{out}");
    let line = |name: &str| {
        let shown = dir.join(name).display().to_string();
        out.lines()
            .find(|l| l.trim_start().starts_with(&shown))
            .unwrap_or_else(|| panic!("{name} listed: {out}"))
            .to_string()
    };
    assert!(line("triaged.toml").ends_with("(replaced)"));
    assert!(line("templates/ack.txt").ends_with("(replaced)"));
    assert!(!line("templates/survey.html").contains("replaced"), "{out}");
}
