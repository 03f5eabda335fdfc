//! Digests, alerts and health notes as email bodies, through the operator's templates
//! (`digest`, `alert`, `health` .txt/.html in the templates directory).
//!
//! Golden tests: the fixture digest, alerts and health notes rendered with the shipped templates
//! must match the files in `src/notices/golden/` byte for byte. After an intended change,
//! regenerate them with `UPDATE_GOLDEN=1 cargo test --lib notices::render` and review the diff.

use serde::Serialize;

use crate::templates::Templates;

/// A staff email, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Render template `name` with `ctx` under `subject`.
pub fn render<C: Serialize>(
    templates: &Templates,
    name: &str,
    subject: &str,
    ctx: &C,
) -> anyhow::Result<RenderedMail> {
    let r = templates.render(name, ctx)?;
    // Staff read the text part (and `digest --preview`) in terminals and plain-text clients:
    // a customer's subject or excerpt carrying ESC, NUL or a bidi override shows escaped.
    Ok(RenderedMail {
        subject: crate::wording::one_line(subject).into_owned(),
        text: crate::wording::lines(&tidy(&r.text)).into_owned(),
        html: r.html,
    })
}

/// Template output with runs of blank lines squeezed to one and trailing spaces cut, so
/// operators can lay out templates readably without the email showing it.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::digest::samples;

    fn templates() -> Templates {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        Templates::load(&dir, &["digest", "alert", "health"]).expect("shipped templates load")
    }

    fn golden(name: &str, actual: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/notices/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            expected == actual,
            "{name} differs from {} (UPDATE_GOLDEN=1 rewrites it; review the diff):\n{actual}",
            path.display()
        );
    }

    #[test]
    fn tidy_squeezes_blank_lines() {
        assert_eq!(super::tidy("\n\na  \n\n\n\nb\n\n"), "a\n\nb\n");
    }

    #[test]
    fn golden_digest_text_and_html() {
        let t = templates();
        let d = &samples()[0];
        let r = render(&t, "digest", &d.subject, d).unwrap();
        golden("digest.txt", &r.text);
        golden("digest.html", &r.html);
        assert!(
            r.html.contains("&lt;script&gt;") && !r.html.contains("<script>"),
            "customer text is escaped in HTML"
        );
        let empty = &samples()[1];
        let r = render(&t, "digest", &empty.subject, empty).unwrap();
        golden("digest-empty.txt", &r.text);
    }

    #[test]
    fn golden_alert_and_health() {
        let t = templates();
        for (i, a) in crate::alerts::alert_samples().iter().enumerate() {
            let r = render(&t, "alert", &a.subject, a).unwrap();
            golden(&format!("alert-{i}.txt"), &r.text);
            golden(&format!("alert-{i}.html"), &r.html);
        }
        for (i, h) in crate::alerts::health_samples().iter().enumerate() {
            let r = render(&t, "health", &h.subject, h).unwrap();
            golden(&format!("health-{i}.txt"), &r.text);
        }
    }

    #[test]
    fn a_digest_listing_thousands_of_tickets_renders_within_the_template_limits() {
        // Every section full at the largest max_per_section (500): 4,500 tickets listed (the
        // fixture lists every section), more than any digest can list, each with the
        // fixture's longest entry.
        let mut d = samples()[0].clone();
        let longest = d
            .sections
            .iter()
            .flat_map(|s| s.entries.iter())
            .max_by_key(|e| e.reasons.len() + e.hits.len() + e.excerpt.len())
            .cloned()
            .expect("the fixture lists tickets");
        for s in &mut d.sections {
            s.entries = vec![longest.clone(); 500];
        }
        let t = templates();
        let mail = render(&t, "digest", &d.subject, &d).expect("renders");
        assert_eq!(d.sections.len(), 9, "every section");
        assert_eq!(mail.text.matches(&longest.tag).count(), 4_500);
        for file in ["digest.txt", "digest.html"] {
            let used = t.fuel_used(file, &d);
            assert!(
                used > 0 && used < crate::templates::FUEL / 4,
                "{file}: {used} of {} fuel",
                crate::templates::FUEL
            );
            eprintln!("{file}: 4,500 entries, fuel used {used}");
        }
        assert!(
            mail.html.len() < crate::templates::MAX_STAFF_OUTPUT / 2,
            "{}",
            mail.html.len()
        );
    }
}
