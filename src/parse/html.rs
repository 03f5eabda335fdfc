//! HTML to text for matching rules: one pass over the input, no tree, so the cost is linear
//! in the size of the HTML whatever its shape (depth, table width, unclosed tags) and the
//! output is capped.
//!
//! Why not a renderer: html2text builds a DOM and lays out tables; a 1 MB email of `<td>x`
//! made it allocate gigabytes, and 150 KB of nested `<div>` took 12 s. Rules need words in
//! order, line breaks where blocks end (a negation does not reach across them), and quoted
//! replies marked as quotes (`> `, so [`crate::score`] leaves them out) — not a layout.
//!
//! What it does: drops tags, comments and the contents of `script`, `style`, `title`,
//! `template` and `noscript`; ends a line at block elements and `<br>`; separates table cells
//! with a space; prefixes lines inside `<blockquote>` with `> `; decodes character references
//! (named ones through mail-parser's table); collapses whitespace; drops control characters.

/// Elements whose end or start ends a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
];

/// Elements whose content is not text a person reads.
const SKIPPED: &[&str] = &["noscript", "script", "style", "template", "title"];

/// Deepest `<blockquote>` nesting shown with its own `> ` (deeper ones count as this deep).
const MAX_QUOTE_DEPTH: usize = 8;

/// The text of `html`, at most about `max_out` bytes of it.
pub fn to_text(html: &str, max_out: usize) -> String {
    let mut w = Writer {
        out: String::with_capacity(html.len().min(max_out) / 2),
        quote: 0,
        line_start: true,
        space: false,
    };
    let b = html.as_bytes();
    let mut no_quote_after = [usize::MAX; 2];
    let mut i = 0;
    while i < b.len() && w.out.len() < max_out {
        match b[i] {
            b'<' => i = tag(html, i, &mut w, &mut no_quote_after),
            b'&' => i = entity(html, i, &mut w),
            c if c.is_ascii_whitespace() => {
                w.space = true;
                i += 1;
            }
            _ => {
                // A run of ordinary text, copied whole (the special bytes are all ASCII, so
                // the run ends on a character boundary).
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'<' || c == b'&' || c.is_ascii_whitespace())
                    .map_or(b.len(), |p| i + p);
                w.text(&html[i..end]);
                i = end;
            }
        }
    }
    if w.out.len() > max_out {
        let mut cut = max_out;
        while !w.out.is_char_boundary(cut) {
            cut -= 1;
        }
        w.out.truncate(cut);
    }
    let kept = w.out.trim_end().len();
    w.out.truncate(kept);
    w.out
}

struct Writer {
    out: String,
    /// `<blockquote>` depth.
    quote: usize,
    /// Nothing written on the current line yet.
    line_start: bool,
    /// Whitespace seen since the last text.
    space: bool,
}

impl Writer {
    fn text(&mut self, t: &str) {
        if t.is_empty() {
            return;
        }
        if self.line_start {
            for _ in 0..self.quote.min(MAX_QUOTE_DEPTH) {
                self.out.push_str("> ");
            }
            self.line_start = false;
        } else if self.space {
            self.out.push(' ');
        }
        self.space = false;
        for c in t.chars() {
            if c.is_whitespace() {
                self.space = true;
            } else if !c.is_control() {
                if self.space && !self.out.ends_with(' ') {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(c);
            }
        }
    }

    fn newline(&mut self) {
        let kept = self.out.trim_end_matches(' ').len();
        self.out.truncate(kept);
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.line_start = true;
        self.space = false;
    }
}

/// Handle the markup starting at `b[i] == '<'`; returns where the text goes on.
fn tag(html: &str, i: usize, w: &mut Writer, no_quote_after: &mut [usize; 2]) -> usize {
    let b = html.as_bytes();
    let rest = &html[i..];
    if rest.starts_with("<!--") {
        return html[i + 4..].find("-->").map_or(b.len(), |p| i + 4 + p + 3);
    }
    let mut j = i + 1;
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    let declaration = matches!(b.get(j), Some(b'!' | b'?'));
    let name_start = j;
    while j < b.len() && b[j].is_ascii_alphanumeric() && j - name_start < 16 {
        j += 1;
    }
    if j == name_start && !declaration {
        // Not a tag (`a < b`): the `<` is text.
        w.text("<");
        return i + 1;
    }
    let name = html[name_start..j].to_ascii_lowercase();
    let end = tag_end(b, j, no_quote_after);
    if declaration {
        return end;
    }
    if !closing && SKIPPED.contains(&name.as_str()) {
        return skip_element(html, end, &name);
    }
    if name == "blockquote" {
        w.newline();
        if closing {
            w.quote = w.quote.saturating_sub(1);
        } else {
            w.quote = w.quote.saturating_add(1);
        }
    } else if BLOCKS.contains(&name.as_str()) {
        w.newline();
    } else if name == "td" || name == "th" {
        w.space = true;
    }
    end
}

/// Just past the `>` that ends the tag whose name ends at `j`, with attribute values in quotes
/// skipped. An unclosed quote ends at the next `>`, as a browser that gives up would. Each
/// search is remembered when it fails (`no_quote_after`), so no stretch of input is searched
/// twice for a quote that is not there: the whole walk stays linear.
fn tag_end(b: &[u8], mut j: usize, no_quote_after: &mut [usize; 2]) -> usize {
    while j < b.len() {
        match b[j] {
            b'>' => return j + 1,
            q @ (b'"' | b'\'') => {
                let k = usize::from(q == b'\'');
                let close = if j >= no_quote_after[k] {
                    None
                } else {
                    b[j + 1..].iter().position(|&c| c == q)
                };
                match close {
                    Some(p) => j += p + 2,
                    None => {
                        no_quote_after[k] = no_quote_after[k].min(j);
                        return b[j..]
                            .iter()
                            .position(|&c| c == b'>')
                            .map_or(b.len(), |p| j + p + 1);
                    }
                }
            }
            _ => j += 1,
        }
    }
    b.len()
}

/// Past the end tag of a skipped element (`</script>`), or the end of the input.
fn skip_element(html: &str, from: usize, name: &str) -> usize {
    let b = html.as_bytes();
    let mut k = from;
    while let Some(p) = html[k..].find("</") {
        let at = k + p + 2;
        let n = b.len().min(at + name.len());
        if html.as_bytes()[at..n].eq_ignore_ascii_case(name.as_bytes()) {
            return tag_end(b, n, &mut [usize::MAX; 2]);
        }
        k = at;
    }
    b.len()
}

/// A character reference at `b[i] == '&'`, decoded when it is one; returns where text goes on.
fn entity(html: &str, i: usize, w: &mut Writer) -> usize {
    let b = html.as_bytes();
    let window = &b[i + 1..b.len().min(i + 34)];
    let semi = window.iter().position(|&c| c == b';').filter(|&p| {
        p > 0
            && window[..p]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'#')
    });
    match semi {
        Some(p) => {
            let mut decoded = String::new();
            mail_parser::decoders::html::add_html_token(&mut decoded, &b[i..i + p + 2], false);
            w.text(&decoded);
            i + p + 2
        }
        None => {
            w.text("&");
            i + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn renders_what_rules_need() {
        let cases = [
            (
                "<p>Site is <b>down</b></p><p>again</p>",
                "Site is down\nagain",
            ),
            ("a<br>b<br/>c", "a\nb\nc"),
            ("<div>one</div><div>two</div>", "one\ntwo"),
            (
                "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>",
                "a b\nc",
            ),
            ("x<script>alert('down')</script>y", "xy"),
            ("<style>p{}</style><title>t</title>text", "text"),
            ("<!-- hidden -->shown", "shown"),
            (
                "caf&eacute; &amp; &#39;tea&#x27; &bogus &lt;3",
                "café & 'tea' &bogus <3",
            ),
            ("a < b and c>d", "a < b and c>d"),
            ("<a href=\"x>y\">link</a>", "link"),
            (
                "<p>new</p><blockquote><p>old angry text</p></blockquote>",
                "new\n> old angry text",
            ),
            ("  lots   of\n\n  space ", "lots of space"),
            ("bell&#7;ring\u{1b}[31m", "bellring[31m"),
            ("<!DOCTYPE html><html><body>hi</body></html>", "hi"),
        ];
        for (html, want) in cases {
            assert_eq!(to_text(html, 1 << 20), want, "{html:?}");
        }
    }

    #[test]
    fn unclosed_things_end_safely() {
        assert_eq!(to_text("<p title=\"never closed>hello", 100), "hello");
        assert_eq!(to_text("before<script>all the rest", 100), "before");
        assert_eq!(to_text("before<!-- all the rest", 100), "before");
        assert_eq!(to_text("x<", 100), "x<");
        assert_eq!(to_text("&", 100), "&");
    }

    #[test]
    fn output_is_capped_on_a_char_boundary() {
        let t = to_text(&"é".repeat(1000), 101);
        assert!(t.len() <= 101 && t.chars().all(|c| c == 'é'), "{}", t.len());
    }

    #[test]
    fn hostile_shapes_give_their_text() {
        let n = 200_000;
        assert_eq!(
            to_text(&format!("{}down", "<div>".repeat(n)), 1 << 20),
            "down"
        );
        let cells = to_text(&"<td>x".repeat(n), 1 << 20);
        assert_eq!(cells.len(), 2 * n - 1, "one x and one space per cell");
        assert_eq!(to_text(&"<a title=\"".repeat(n), 1 << 20), "");
        assert_eq!(to_text(&"<!--".repeat(n), 1 << 20), "");
        assert_eq!(
            to_text(&format!("ok{}", "<script>".repeat(n)), 1 << 20),
            "ok"
        );
        let amps = to_text(&"&amp".repeat(n), 1 << 20);
        assert_eq!(amps.len(), 4 * n, "no reference is complete without ';'");
        let quotes = to_text(&"<blockquote>q".repeat(n), 1 << 20);
        assert!(
            quotes.lines().all(|l| l.len() <= 2 * 8 + 1),
            "quote depth is capped"
        );
    }
}
