//! Email templates (minijinja): `NAME.txt` and `NAME.html` in the templates directory, rendered into
//! the text and HTML parts of a multipart/alternative email. HTML is auto-escaped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::diag::Diagnostic;

/// What a template for a customer (acknowledgement or follow-up) can use.
#[derive(Debug, Clone, Serialize)]
pub struct MailContext {
    /// What is being sent: `ack`, `holding`, `verify` or `survey`.
    pub kind: String,
    /// The customer's display name, or the local part of their address.
    pub customer_name: String,
    pub customer_email: String,
    /// e.g. `T-1042`.
    pub ticket: String,
    /// The customer's subject.
    pub subject: String,
    /// `urgent`, `high`, `normal`, `low`.
    pub priority: String,
    /// Tone labels the rules found (`angry`, `happy`, `polite`, …), sorted.
    pub tones: Vec<String>,
    /// When the customer will hear from a person, written out: "by Monday 10:00 CET" on
    /// business hours, "within 8 hours" without. (Acknowledgements and holding notes.)
    pub reply_time: String,
    /// The survey link (`[followups] survey_url`); empty when customers reply with a number.
    pub survey_url: String,
    pub support_address: String,
}

impl MailContext {
    /// A context for lint renders in `triaged check`.
    pub fn sample() -> Self {
        MailContext {
            kind: "ack".into(),
            customer_name: "Ada".into(),
            customer_email: "ada@example.com".into(),
            ticket: "T-1000".into(),
            subject: "Cannot log in".into(),
            priority: "high".into(),
            tones: vec!["angry".into()],
            reply_time: "within 8 hours".into(),
            survey_url: String::new(),
            support_address: "support@example.com".into(),
        }
    }
}

/// Rendered text and HTML bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub html: String,
}

/// The loaded, compiled templates. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    dir: PathBuf,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// Load `NAME.txt` and `NAME.html` for each name, compile them, and lint-render each with a
    /// sample context so a typo in a variable name is found now, not when a customer writes.
    pub fn load(dir: &Path, names: &[&str]) -> Result<Templates, Vec<Diagnostic>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut errors = Vec::new();
        for name in names {
            for ext in ["txt", "html"] {
                let file = format!("{name}.{ext}");
                let path = dir.join(&file);
                let source = match std::fs::read_to_string(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(Diagnostic::file(
                            &path,
                            format!("cannot read template: {e}"),
                        ));
                        continue;
                    }
                };
                if let Err(e) = env.add_template_owned(file.clone(), source) {
                    errors.push(template_error(&path, &e));
                    continue;
                }
                let rendered = env
                    .get_template(&file)
                    .and_then(|t| samples(name).iter().try_for_each(|s| t.render(s).map(drop)));
                if let Err(e) = rendered {
                    errors.push(template_error(&path, &e));
                }
            }
        }
        if errors.is_empty() {
            Ok(Templates {
                env: Arc::new(env),
                dir: dir.to_path_buf(),
            })
        } else {
            Err(errors)
        }
    }

    /// Render `NAME.txt` and `NAME.html` with `ctx`.
    pub fn render<C: Serialize>(&self, name: &str, ctx: &C) -> anyhow::Result<Rendered> {
        let text = self.env.get_template(&format!("{name}.txt"))?.render(ctx)?;
        let html = self
            .env
            .get_template(&format!("{name}.html"))?
            .render(ctx)?;
        Ok(Rendered { text, html })
    }
}

/// Contexts to lint-render template `name` with: every shape its context can take, so no
/// branch hides a typo.
fn samples(name: &str) -> Vec<minijinja::Value> {
    use minijinja::Value;
    match name {
        "digest" => crate::digest::samples()
            .iter()
            .map(Value::from_serialize)
            .collect(),
        "alert" => crate::alerts::alert_samples()
            .iter()
            .map(Value::from_serialize)
            .collect(),
        "health" => crate::alerts::health_samples()
            .iter()
            .map(Value::from_serialize)
            .collect(),
        _ => {
            // Both ways a survey can be asked.
            let mut sample = MailContext::sample();
            sample.kind = name.to_string();
            let mut with_link = sample.clone();
            with_link.survey_url = "https://survey.example.com/t-1000".into();
            vec![
                Value::from_serialize(&sample),
                Value::from_serialize(&with_link),
            ]
        }
    }
}

fn template_error(path: &Path, e: &minijinja::Error) -> Diagnostic {
    let message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    Diagnostic {
        file: path.to_path_buf(),
        line: e.line().unwrap_or(0),
        col: usize::from(e.line().is_some()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for (name, body) in files {
            std::fs::write(d.path().join(name), body).expect("write");
        }
        d
    }

    #[test]
    fn renders_and_escapes_html() {
        let d = dir_with(&[
            ("ack.txt", "Hi {{ customer_name }}"),
            ("ack.html", "<p>Hi {{ customer_name }}</p>"),
        ]);
        let t = Templates::load(d.path(), &["ack"]).expect("load");
        let mut ctx = MailContext::sample();
        ctx.customer_name = "<script>".into();
        let r = t.render("ack", &ctx).expect("render");
        assert_eq!(r.text, "Hi <script>");
        assert_eq!(r.html, "<p>Hi &lt;script&gt;</p>");
    }

    #[test]
    fn syntax_error_has_line() {
        let d = dir_with(&[
            ("ack.txt", "line one\n{{ customer_name \n"),
            ("ack.html", "ok"),
        ]);
        let errs = Templates::load(d.path(), &["ack"]).expect_err("must fail");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("ack.txt:2:"), "{}", errs[0]);
    }

    #[test]
    fn unknown_variable_is_caught_at_load() {
        let d = dir_with(&[("ack.txt", "{{ custmer_name }}"), ("ack.html", "ok")]);
        let errs = Templates::load(d.path(), &["ack"]).expect_err("must fail");
        assert!(errs[0].message.contains("undefined"), "{}", errs[0]);
    }

    #[test]
    fn shipped_ack_templates_fit_the_tone() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let t = Templates::load(&dir, &["ack"]).expect("shipped templates load");
        let mut ctx = MailContext::sample();
        ctx.priority = "urgent".into();
        let r = t.render("ack", &ctx).expect("render");
        assert!(
            r.text.contains("We're sorry you had to write to us"),
            "{}",
            r.text
        );
        assert!(r.text.contains("We have marked it urgent."), "{}", r.text);
        assert!(
            r.text.contains("ticket T-1000")
                && r.text.contains("[#T-1000]")
                && r.text.contains("within 8 hours"),
            "{}",
            r.text
        );
        assert!(r.html.contains("<strong>T-1000</strong>"), "{}", r.html);
        ctx.tones = vec!["happy".into()];
        ctx.priority = "low".into();
        let r = t.render("ack", &ctx).expect("render");
        assert!(
            r.text.contains("Thank you for taking the time") && !r.text.contains("sorry"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("urgent"), "{}", r.text);
    }

    #[test]
    fn missing_file_is_reported() {
        let d = dir_with(&[("ack.txt", "ok")]);
        let errs = Templates::load(d.path(), &["ack"]).expect_err("must fail");
        assert!(errs[0].to_string().contains("ack.html"), "{}", errs[0]);
    }
}
