//! Digests, alerts and health notes as email bodies, through the operator's templates
//! (`digest`, `alert`, `health` .txt/.html in the templates directory).

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
    #[test]
    fn tidy_squeezes_blank_lines() {
        assert_eq!(super::tidy("\n\na  \n\n\n\nb\n\n"), "a\n\nb\n");
    }
}
