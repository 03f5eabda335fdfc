//! Email templates (minijinja): `NAME.txt` and `NAME.html` in the templates directory, rendered into
//! the text and HTML parts of a multipart/alternative email. HTML is auto-escaped.
//!
//! A render is bounded: at most [`FUEL`] template instructions and at most [`MAX_OUTPUT`]
//! (customer mail) or [`MAX_STAFF_OUTPUT`] (digests, alerts, health notes) bytes per part, so
//! a template that loops forever or writes gigabytes fails, at `triaged check` (which renders
//! every template with sample data) and at send time (that email fails with the reason; the
//! daemon goes on).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::diag::Diagnostic;

/// Template instructions one render may run. The most a digest can list (8 sections of
/// `max_per_section` at most 500: 4,000 tickets) costs the shipped digest 0.27 million in
/// its text part and 0.58 million in HTML (a test keeps it under a quarter of this); a
/// loop that never ends stops here after ~0.6 s.
pub const FUEL: u64 = 20_000_000;
/// Bytes one rendered part (text or HTML) of customer mail may have.
pub const MAX_OUTPUT: usize = 4 << 20;
/// Bytes one rendered part of staff mail (digest, alert, health) may have.
pub const MAX_STAFF_OUTPUT: usize = 16 << 20;
/// Bytes in one template file.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// The output limit of template `name`.
fn max_output(name: &str) -> usize {
    if matches!(name, "digest" | "alert" | "health") {
        MAX_STAFF_OUTPUT
    } else {
        MAX_OUTPUT
    }
}

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
    /// Intents the rules found (`billing`, `cancel`, …), sorted.
    pub intents: Vec<String>,
    /// The team the ticket is routed to (`[[team]] name`); empty: none.
    pub team: String,
    /// That team's `description`, to follow "We have passed your message to": "our billing
    /// specialists, who can check the charges on your account"; empty: no team.
    pub team_description: String,
    /// Clarifying questions (`[[ask]]`), rendered, at most two; empty: none apply.
    /// (Acknowledgements.)
    pub questions: Vec<String>,
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
            intents: vec!["billing".into()],
            team: "billing".into(),
            team_description: "our billing specialists, who can check the charges on your account"
                .into(),
            questions: vec!["Could you send us the invoice or order number?".into()],
        }
    }
}

/// Bytes a rendered `[[ask]]` question may take.
pub const MAX_QUESTION_OUTPUT: usize = 1024;

/// Render a template written inline in the configuration (an `[[ask]]` question) with `ctx`,
/// within [`FUEL`] and [`MAX_QUESTION_OUTPUT`], undefined variables refused: the same
/// discipline as the template files.
pub fn render_inline<C: Serialize>(source: &str, ctx: &C) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.add_template("inline", source)
        .map_err(|e| RenderError::Template(e).message())?;
    render_part(&env, "inline", ctx, MAX_QUESTION_OUTPUT)
        .map(|s| s.trim().to_string())
        .map_err(|e| e.message())
}

/// Width the `wrap` filter breaks lines at when the template names none: RFC 5322's
/// recommended line length for email text.
pub const WRAP_WIDTH: usize = 78;

/// The `wrap` filter of the templates (`{% filter wrap %}...{% endfilter %}`, or
/// `wrap(72)`): lines longer than the width broken between words (see [`wrap`]), so a long
/// subject, team description or question does not make a line run off a plain-text reader's
/// screen. HTML-safe input stays safe.
fn wrap_filter(value: &minijinja::Value, width: Option<usize>) -> minijinja::Value {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    let out = wrap(&text, width.unwrap_or(WRAP_WIDTH));
    if value.is_safe() {
        minijinja::Value::from_safe_string(out)
    } else {
        minijinja::Value::from(out)
    }
}

/// `text` with each line longer than `width` characters broken at spaces, greedily. A line
/// keeps its indentation on its continuation lines, and a list item (`- `, `* `) is indented
/// under its text. A word longer than the width (a link) stays whole on a line of its own.
/// Lines that fit are left exactly as written.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width.max(1));
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let hanging = if body.starts_with("- ") || body.starts_with("* ") {
            indent + 2
        } else {
            indent
        };
        out.push_str(&line[..indent]);
        let mut used = indent;
        let mut first = true;
        for word in body.split(' ').filter(|w| !w.is_empty()) {
            let n = word.chars().count();
            if !first && used + 1 + n > width {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', hanging));
                used = hanging;
            } else if !first {
                out.push(' ');
                used += 1;
            }
            out.push_str(word);
            used += n;
            first = false;
        }
    }
    out
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
        env.set_fuel(Some(FUEL));
        env.add_filter("wrap", wrap_filter);
        let mut errors = Vec::new();
        for name in names {
            for ext in ["txt", "html"] {
                let file = format!("{name}.{ext}");
                let path = dir.join(&file);
                let source = match crate::diag::read_limited(&path, "template", MAX_TEMPLATE_BYTES)
                {
                    Ok(s) => s,
                    Err(d) => {
                        errors.push(d);
                        continue;
                    }
                };
                if let Err(e) = env.add_template_owned(file.clone(), source) {
                    errors.push(template_error(&path, &RenderError::Template(e)));
                    continue;
                }
                let rendered = samples(name)
                    .iter()
                    .try_for_each(|s| render_part(&env, &file, s, max_output(name)).map(drop));
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

    /// Render `NAME.txt` and `NAME.html` with `ctx`, each within [`FUEL`] and its output limit.
    pub fn render<C: Serialize>(&self, name: &str, ctx: &C) -> anyhow::Result<Rendered> {
        let max = max_output(name);
        let part = |ext: &str| {
            let file = format!("{name}.{ext}");
            render_part(&self.env, &file, ctx, max)
                .map_err(|e| anyhow::anyhow!("{}: {}", file, e.message()))
        };
        Ok(Rendered {
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

impl Templates {
    /// Fuel one render of template `file` uses (for the tests that keep [`FUEL`] honest).
    #[cfg(test)]
    pub(crate) fn fuel_used<C: Serialize>(&self, file: &str, ctx: &C) -> u64 {
        let mut sink = Vec::new();
        let captured = self
            .env
            .get_template(file)
            .and_then(|t| t.render_captured_to(ctx, &mut sink))
            .expect("renders");
        captured.state().fuel_levels().map_or(0, |(used, _)| used)
    }
}

/// Why a render failed: the template itself (syntax, an undefined variable, out of fuel), or
/// its output passing the limit.
#[derive(Debug)]
enum RenderError {
    Template(minijinja::Error),
    TooLarge(usize),
}

impl RenderError {
    fn message(&self) -> String {
        match self {
            RenderError::TooLarge(max) => format!(
                "renders to more than {} MiB (the limit): a loop over too much, or a value repeated too often",
                max >> 20
            ),
            RenderError::Template(e) if e.kind() == ErrorKind::OutOfFuel => format!(
                "runs more than {FUEL} template steps (the limit): a loop that goes on too long, such as a range() inside a range()"
            ),
            RenderError::Template(e) => match e.detail() {
                Some(detail) => format!("{}: {detail}", e.kind()),
                None => e.kind().to_string(),
            },
        }
    }
}

/// Render template `file` into at most `max` bytes.
fn render_part<C: Serialize>(
    env: &Environment<'_>,
    file: &str,
    ctx: &C,
    max: usize,
) -> Result<String, RenderError> {
    let template = env.get_template(file).map_err(RenderError::Template)?;
    let mut out = Capped {
        bytes: Vec::new(),
        max,
        over: false,
    };
    match template.render_captured_to(ctx, &mut out) {
        Ok(_) => {}
        Err(_) if out.over => return Err(RenderError::TooLarge(max)),
        Err(e) => return Err(RenderError::Template(e)),
    }
    // minijinja writes whole `str`s, so the bytes are UTF-8; checked all the same.
    String::from_utf8(out.bytes).map_err(|e| {
        RenderError::Template(minijinja::Error::new(
            ErrorKind::WriteFailure,
            format!("output is not UTF-8: {e}"),
        ))
    })
}

/// A writer that refuses to grow past `max` bytes.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            self.over = true;
            return Err(std::io::Error::other("template output limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
            // No team and nothing to ask: today's acknowledgement.
            let mut plain = sample.clone();
            plain.team.clear();
            plain.team_description.clear();
            plain.questions.clear();
            plain.intents.clear();
            // Every other branch of an acknowledgement: two questions, a happy customer
            // with a team, the meek customer, the customer who asks to leave.
            let mut two = sample.clone();
            two.questions
                .push("Which address do you sign in with?".into());
            let mut happy = sample.clone();
            happy.tones = vec!["happy".into()];
            happy.priority = "urgent".into();
            let mut meek = plain.clone();
            meek.tones = vec!["anxious".into(), "meek".into()];
            let mut leaving = sample.clone();
            leaving.intents = vec!["cancel".into()];
            leaving.tones.clear();
            leaving.questions.clear();
            [sample, with_link, plain, two, happy, meek, leaving]
                .iter()
                .map(Value::from_serialize)
                .collect()
        }
    }
}

fn template_error(path: &Path, e: &RenderError) -> Diagnostic {
    let line = match e {
        RenderError::Template(e) => e.line(),
        RenderError::TooLarge(_) => None,
    };
    Diagnostic {
        file: path.to_path_buf(),
        line: line.unwrap_or(0),
        col: usize::from(line.is_some()),
        message: e.message(),
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
        // Where the lines break is the `wrap` filter's business.
        let text = r.text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            r.text.contains("We're sorry you had to write to us"),
            "{}",
            r.text
        );
        assert!(text.contains("We have marked it urgent."), "{}", r.text);
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

    /// The shipped acknowledgement in each of its shapes: the team and why, the questions
    /// (none, one, two), the meek customer's invitation, the leaving customer's confirmation.
    #[test]
    fn shipped_ack_speaks_to_each_customer() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let t = Templates::load(&dir, &["ack"]).expect("shipped templates load");
        // (text, HTML, both with each run of white space one space: where lines break)
        let both = |ctx: &MailContext| {
            let r = t.render("ack", ctx).expect("render");
            let all = format!("{}\n{}", r.text, r.html);
            let flat = all.split_whitespace().collect::<Vec<_>>().join(" ");
            (r.text, r.html, flat)
        };
        let team = "We have passed your message to our billing";
        let invite = "If there is anything else about this, however small, tell us";
        let no_retention = "We will not try to talk you out of it.";

        // A team and one question: asked in one sentence; the reply is welcome.
        let sample = MailContext::sample();
        let (text, html, _) = both(&sample);
        assert!(text.contains(team) && html.contains(team), "{text}\n{html}");
        assert!(!html.contains("pass it on"), "{html}");
        assert!(
            text.contains("one question: Could you send us the invoice or\norder number?"),
            "{text}"
        );
        assert!(
            text.contains("your reply to it joins the same ticket"),
            "{text}"
        );
        assert!(
            !text.contains("no need to reply") && !html.contains("<li>"),
            "{html}"
        );

        // Two questions: a list.
        let mut two = sample.clone();
        two.questions
            .push("Which address do you sign in with?".into());
        let (text, html, _) = both(&two);
        assert!(
            text.contains("two questions:\n- Could you send us the invoice or order number?\n- Which address do you sign in with?\n"),
            "{text}"
        );
        assert!(
            html.contains("<ul>\n<li>Could you send us the invoice or order number?</li>\n<li>Which address do you sign in with?</li>\n</ul>"),
            "{html}"
        );

        // No team, no question: neither is mentioned, and no reply is needed.
        let mut plain = sample.clone();
        plain.team.clear();
        plain.team_description.clear();
        plain.questions.clear();
        let (text, _, all) = both(&plain);
        assert!(
            !all.contains("passed your message") && !all.contains("question"),
            "{all}"
        );
        assert!(text.ends_with("there is no need to reply to it."), "{text}");

        // The meek customer is invited to say more, with or without a team.
        let mut meek = plain.clone();
        meek.tones = vec!["meek".into()];
        let (text, html, _) = both(&meek);
        assert!(
            text.contains(&format!("{invite} - it helps us fix\nit properly.")),
            "{text}"
        );
        assert!(
            html.contains(&format!("{invite} &mdash; it helps us fix it properly.")),
            "{html}"
        );
        assert!(
            text.contains("your reply to it joins the same ticket"),
            "{text}"
        );
        assert!(
            !both(&sample).2.contains(invite),
            "only the meek are invited"
        );

        // The leaving customer: confirmed, no retention, no apology; the promise stands.
        let mut leaving = sample.clone();
        leaving.intents = vec!["cancel".into(), "billing".into()];
        leaving.tones = vec!["angry".into(), "happy".into(), "meek".into()];
        leaving.priority = "urgent".into();
        leaving.questions.clear();
        let (_, _, all) = both(&leaving);
        assert_eq!(
            all.matches("we will carry it out as you asked").count(),
            2,
            "{all}"
        );
        assert_eq!(all.matches(no_retention).count(), 2, "{all}");
        assert!(
            !all.contains("sorry") && !all.contains("urgent") && !all.contains(invite),
            "{all}"
        );
        assert!(
            all.contains("A person from our team will reply within 8 hours."),
            "{all}"
        );
        assert!(
            all.contains(team),
            "the team still says who handles it: {all}"
        );
        // A threat to leave is not leaving: the usual apology, no such promise.
        let mut threat = sample.clone();
        threat.intents = vec!["churn-risk".into()];
        let (_, _, all) = both(&threat);
        assert!(
            all.contains("We're sorry you had to write") && !all.contains(no_retention),
            "{all}"
        );

        // The happy customer with a team is not told "we will pass it on" twice.
        let mut happy = sample.clone();
        happy.tones = vec!["happy".into()];
        let (text, _, _) = both(&happy);
        assert!(
            text.contains("as ticket T-1000.\n\nWe have passed your message to")
                && !text.contains("pass it on"),
            "{text}"
        );
        happy.team_description.clear();
        assert!(both(&happy).0.contains("and we will pass it on."));
    }

    #[test]
    fn customer_words_in_a_team_or_question_are_escaped_in_html_and_wrapped_in_text() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let t = Templates::load(&dir, &["ack"]).expect("shipped templates load");
        let mut ctx = MailContext::sample();
        ctx.team_description = "our <b>billing</b> & \"payments\" people".into();
        ctx.questions = vec!["Is it <script>alert(1)</script>?".into()];
        ctx.subject = "x".repeat(120);
        let r = t.render("ack", &ctx).expect("render");
        assert!(
            r.html
                .contains("our &lt;b&gt;billing&lt;&#x2f;b&gt; &amp; &quot;payments&quot; people")
                && r.html.contains("Is it &lt;script&gt;")
                && !r.html.contains("<script>")
                && !r.html.contains("<b>"),
            "{}",
            r.html
        );
        // A word longer than a line keeps its own line; everything else fits in 78.
        let long: Vec<&str> = r
            .text
            .lines()
            .filter(|l| l.chars().count() > WRAP_WIDTH)
            .collect();
        assert_eq!(long, [format!("\"{}\"", "x".repeat(120))], "{}", r.text);
    }

    #[test]
    fn wrap_breaks_only_long_lines_between_words() {
        let cases: &[(&str, usize, &str)] = &[
            ("short line\n\nkept", 20, "short line\n\nkept"),
            ("one two three four five", 10, "one two\nthree four\nfive"),
            ("exactly ten", 11, "exactly ten"),
            (
                "  indented words wrap here",
                14,
                "  indented\n  words wrap\n  here",
            ),
            (
                "- a list item that wraps",
                12,
                "- a list\n  item that\n  wraps",
            ),
            (
                "see https://example.com/a/very/long/link ok",
                12,
                "see\nhttps://example.com/a/very/long/link\nok",
            ),
            (
                "ünïcödé wörds ärë cöüntëd",
                13,
                "ünïcödé wörds\närë cöüntëd",
            ),
            ("", 5, ""),
        ];
        for (input, width, want) in cases {
            assert_eq!(wrap(input, *width), *want, "{input:?} at {width}");
        }
    }

    #[test]
    fn endless_loops_and_huge_output_fail_at_load() {
        let nested =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let huge = "{% for i in range(100) %}{{ 'x' * 50000000 }}{% endfor %}";
        let d = dir_with(&[("ack.txt", nested), ("ack.html", huge)]);
        let errs = Templates::load(d.path(), &["ack"]).expect_err("must fail");
        let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].ends_with("ack.txt:1:1: runs more than 20000000 template steps (the limit): a loop that goes on too long, such as a range() inside a range()"),
            "{errs:?}"
        );
        assert!(
            errs[1].ends_with("ack.html: renders to more than 4 MiB (the limit): a loop over too much, or a value repeated too often"),
            "{errs:?}"
        );
    }

    #[test]
    fn limits_hold_at_send_time_with_the_reason() {
        // The sample data takes neither branch, so check passes; a real customer does.
        let d = dir_with(&[
            (
                "ack.txt",
                "{% if customer_name == 'Loop' %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}ok",
            ),
            (
                "ack.html",
                "{% if customer_name == 'Big' %}{% for i in range(100) %}{{ 'x' * 50000000 }}{% endfor %}{% endif %}ok",
            ),
        ]);
        let t = Templates::load(d.path(), &["ack"]).expect("the samples render");
        let mut ctx = MailContext::sample();
        ctx.customer_name = "Loop".into();
        let e = t.render("ack", &ctx).expect_err("out of fuel");
        assert!(
            e.to_string()
                .starts_with("ack.txt: runs more than 20000000 template steps"),
            "{e:#}"
        );
        ctx.customer_name = "Big".into();
        let e = t.render("ack", &ctx).expect_err("too large");
        assert!(
            e.to_string()
                .starts_with("ack.html: renders to more than 4 MiB"),
            "{e:#}"
        );
        // And the next one renders as usual.
        ctx.customer_name = "Ada".into();
        assert_eq!(t.render("ack", &ctx).expect("renders").text, "ok");
    }

    #[test]
    fn missing_file_is_reported() {
        let d = dir_with(&[("ack.txt", "ok")]);
        let errs = Templates::load(d.path(), &["ack"]).expect_err("must fail");
        assert!(errs[0].to_string().contains("ack.html"), "{}", errs[0]);
    }
}
