//! The shared evaluation corpus beside the repository (`../shared/eval`), read in place: never
//! copied into the repository.

use std::path::{Path, PathBuf};

/// `../shared/eval/mime/<sub>`, the real-world emails of the corpus by kind (`human`,
/// `malformed`, `auto/bounce`, ...); it may be missing.
pub fn mime_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/eval/mime")
        .join(sub)
}

/// Every `.eml` under `../shared/eval/mime/<sub>`, sorted. The corpus sits beside the
/// repository (CI has it); when it is missing the test fails, unless
/// TRIAGED_ALLOW_MISSING_EVAL=1, which returns `None` so the test can return early.
pub fn eval_mime(sub: &str) -> Option<Vec<PathBuf>> {
    let dir = mime_dir(sub);
    if !dir.is_dir() {
        assert!(
            std::env::var("TRIAGED_ALLOW_MISSING_EVAL").is_ok_and(|v| v == "1"),
            "evaluation corpus missing at {} (set TRIAGED_ALLOW_MISSING_EVAL=1 to skip)",
            dir.display()
        );
        return None;
    }
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "eml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
}
