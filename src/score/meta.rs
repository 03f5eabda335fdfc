//! Meta-rule expressions: rules combined with `and`, `or`, `not`, parentheses and counts
//! (`2 of [anger, shouting, caps]`). A name stands for "that rule fired".
//!
//! ```text
//! expr  := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" unary | atom
//! atom  := "(" expr ")" | N "of" "[" name ("," name)* "]" | name
//! ```
//!
//! Parentheses and `not` nest at most [`MAX_DEPTH`] deep, so parsing, resolving, evaluating
//! and dropping an expression never recurse further than that, on any thread's stack.

use std::collections::BTreeSet;

/// How deep parentheses and `not` may nest. Real rules use three or four levels; the limit is
/// what keeps the recursive descent (and every walk of the tree) far from a 2 MiB stack.
pub const MAX_DEPTH: usize = 64;

/// `satisfiable` tries every combination of the rules while that costs at most this many
/// node visits (2^names x nodes); beyond it the expression is assumed satisfiable.
const SATISFIABLE_BUDGET: usize = 1 << 22;

/// A parsed expression over rule names; [`Expr::resolve`] turns names into rule indices.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<R> {
    Rule(R),
    Not(Box<Expr<R>>),
    And(Vec<Expr<R>>),
    Or(Vec<Expr<R>>),
    AtLeast(usize, Vec<R>),
}

/// A syntax error at a byte offset of the expression.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(usize),
    Open,
    Close,
    LBracket,
    RBracket,
    Comma,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, SyntaxError> {
    let mut out = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        let single = match c {
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            out.push((i, t));
            it.next();
        } else if c.is_whitespace() {
            it.next();
        } else if is_name_char(c) {
            let mut end = i;
            while let Some(&(j, d)) = it.peek() {
                if !is_name_char(d) {
                    break;
                }
                end = j + d.len_utf8();
                it.next();
            }
            let word = &src[i..end];
            match word.parse::<usize>() {
                Ok(n) => out.push((i, Tok::Num(n))),
                Err(_) => out.push((i, Tok::Name(word.to_string()))),
            }
        } else {
            return Err(SyntaxError {
                offset: i,
                message: format!(
                    "unexpected {c:?}; use rule ids, and, or, not, parentheses, N of [a, b]"
                ),
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: &'a [(usize, Tok)],
    pos: usize,
    end: usize,
    /// Parentheses and `not` open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(o, _)| *o)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            offset: self.offset(),
            message: message.into(),
        })
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == w)
    }
    /// Enter one level of nesting at the current token (a `(` or a `not`).
    fn descend(&mut self) -> Result<(), SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!(
                "nested more than {MAX_DEPTH} deep (parentheses and 'not'); write it flatter: \
                 'a and b and c' needs no parentheses, 'not not a' is 'a'"
            ));
        }
        self.depth += 1;
        Ok(())
    }
    fn expr(&mut self) -> Result<Expr<String>, SyntaxError> {
        let mut parts = vec![self.and()?];
        while self.is_word("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }
    fn and(&mut self) -> Result<Expr<String>, SyntaxError> {
        let mut parts = vec![self.unary()?];
        while self.is_word("and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }
    fn unary(&mut self) -> Result<Expr<String>, SyntaxError> {
        if self.is_word("not") {
            self.descend()?;
            self.pos += 1;
            let e = Expr::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<Expr<String>, SyntaxError> {
        match self.peek().cloned() {
            Some(Tok::Open) => {
                self.descend()?;
                self.pos += 1;
                let e = self.expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return self.err("expected ')'");
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                if !self.is_word("of") {
                    return self.err(format!("expected 'of' after {n}, as in {n} of [a, b, c]"));
                }
                self.pos += 1;
                if self.peek() != Some(&Tok::LBracket) {
                    return self.err("expected '[' to start the list of rules");
                }
                self.pos += 1;
                let mut names = Vec::new();
                loop {
                    match self.peek().cloned() {
                        Some(Tok::Name(name)) if !is_keyword(&name) => {
                            self.pos += 1;
                            names.push(name);
                        }
                        _ => return self.err("expected a rule id in the list"),
                    }
                    match self.peek() {
                        Some(Tok::Comma) => self.pos += 1,
                        Some(Tok::RBracket) => {
                            self.pos += 1;
                            break;
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
                if n == 0 || n > names.len() {
                    return self.err(format!(
                        "{n} of a list of {}: the count must be between 1 and the list's length",
                        names.len()
                    ));
                }
                Ok(Expr::AtLeast(n, names))
            }
            Some(Tok::Name(name)) if !is_keyword(&name) => {
                self.pos += 1;
                Ok(Expr::Rule(name))
            }
            Some(_) => self.err("expected a rule id, 'not', '(' or 'N of [...]'"),
            None => self.err("the expression ends too early"),
        }
    }
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "and" | "or" | "not" | "of")
}

/// Parse an expression.
pub fn parse(src: &str) -> Result<Expr<String>, SyntaxError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        end: src.len(),
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos != toks.len() {
        return p.err("unexpected text after the expression (missing 'and'/'or'?)");
    }
    Ok(e)
}

impl<R: Clone + Ord> Expr<R> {
    /// Every rule the expression mentions.
    pub fn names(&self) -> BTreeSet<R> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }
    fn collect(&self, out: &mut BTreeSet<R>) {
        match self {
            Expr::Rule(r) => {
                out.insert(r.clone());
            }
            Expr::Not(e) => e.collect(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.collect(out)),
            Expr::AtLeast(_, rs) => out.extend(rs.iter().cloned()),
        }
    }

    /// Map every name, failing on the first that `f` cannot resolve.
    pub fn resolve<S, E>(&self, f: &mut impl FnMut(&R) -> Result<S, E>) -> Result<Expr<S>, E> {
        Ok(match self {
            Expr::Rule(r) => Expr::Rule(f(r)?),
            Expr::Not(e) => Expr::Not(Box::new(e.resolve(f)?)),
            Expr::And(es) => Expr::And(es.iter().map(|e| e.resolve(f)).collect::<Result<_, _>>()?),
            Expr::Or(es) => Expr::Or(es.iter().map(|e| e.resolve(f)).collect::<Result<_, _>>()?),
            Expr::AtLeast(n, rs) => {
                Expr::AtLeast(*n, rs.iter().map(&mut *f).collect::<Result<_, _>>()?)
            }
        })
    }

    /// Evaluate with `fired` telling whether a rule fired.
    pub fn eval(&self, fired: &impl Fn(&R) -> bool) -> bool {
        match self {
            Expr::Rule(r) => fired(r),
            Expr::Not(e) => !e.eval(fired),
            Expr::And(es) => es.iter().all(|e| e.eval(fired)),
            Expr::Or(es) => es.iter().any(|e| e.eval(fired)),
            Expr::AtLeast(n, rs) => rs.iter().filter(|r| fired(r)).count() >= *n,
        }
    }

    /// Nodes in the tree (a rule of a count list is one).
    pub fn size(&self) -> usize {
        match self {
            Expr::Rule(_) => 1,
            Expr::Not(e) => 1 + e.size(),
            Expr::And(es) | Expr::Or(es) => 1 + es.iter().map(Expr::size).sum::<usize>(),
            Expr::AtLeast(_, rs) => 1 + rs.len(),
        }
    }

    /// Whether some combination of its rules makes the expression true (checked exhaustively
    /// for up to 16 distinct rules and a bounded amount of work; larger expressions are
    /// assumed satisfiable).
    pub fn satisfiable(&self) -> bool {
        let names: Vec<R> = self.names().into_iter().collect();
        if names.len() > 16 || (self.size() << names.len()) > SATISFIABLE_BUDGET {
            return true;
        }
        (0u32..(1 << names.len())).any(|bits| {
            self.eval(&|r: &R| {
                names
                    .iter()
                    .position(|n| n == r)
                    .is_some_and(|i| bits & (1 << i) != 0)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_precedence_and_counts() {
        assert_eq!(
            parse("a or b and not c").expect("parses"),
            Expr::Or(vec![
                Expr::Rule("a".into()),
                Expr::And(vec![
                    Expr::Rule("b".into()),
                    Expr::Not(Box::new(Expr::Rule("c".into())))
                ])
            ])
        );
        assert_eq!(
            parse("2 of [x-1, y.z,w] and (p)").expect("parses"),
            Expr::And(vec![
                Expr::AtLeast(2, names(&["x-1", "y.z", "w"])),
                Expr::Rule("p".into())
            ])
        );
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        let cases = [
            ("a and", 5, "ends too early"),
            ("a b", 2, "unexpected text"),
            ("(a or b", 7, "expected ')'"),
            ("3 of [a, b]", 11, "between 1 and"),
            ("2 [a, b]", 2, "expected 'of'"),
            ("a & b", 2, "unexpected '&'"),
            ("not", 3, "ends too early"),
        ];
        for (src, offset, msg) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.offset, offset, "{src}: {e:?}");
            assert!(e.message.contains(msg), "{src}: {e:?}");
        }
    }

    #[test]
    fn evaluates_and_checks_satisfiability() {
        let e = parse("2 of [a, b, c] and not d").expect("parses");
        let fired = |set: &'static [&'static str]| move |r: &String| set.contains(&r.as_str());
        assert!(e.eval(&fired(&["a", "c"])));
        assert!(!e.eval(&fired(&["a", "c", "d"])));
        assert!(!e.eval(&fired(&["a"])));
        assert!(e.satisfiable());
        assert!(!parse("a and not a").expect("parses").satisfiable());
        assert!(
            !parse("2 of [a, b] and not a and not b")
                .expect("parses")
                .satisfiable()
        );
    }

    #[test]
    fn nesting_is_limited_where_it_goes_too_deep() {
        // At the limit: fine, both ways of nesting.
        let parens = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&parens).is_ok());
        assert!(parse(&format!("{}a", "not ".repeat(MAX_DEPTH))).is_ok());
        let mixed = format!(
            "{}a{}",
            "not (".repeat(MAX_DEPTH / 2),
            ")".repeat(MAX_DEPTH / 2)
        );
        assert!(parse(&mixed).is_ok());
        // One more: refused at the token that opens level 65, however deep the rest goes.
        for n in [MAX_DEPTH + 1, 10_000, 20_000] {
            let e = parse(&format!("{}a{}", "(".repeat(n), ")".repeat(n))).expect_err("parens");
            assert_eq!(e.offset, MAX_DEPTH, "{e:?}");
            assert!(e.message.contains("nested more than 64 deep"), "{e:?}");
            let e = parse(&format!("{}a", "not ".repeat(n))).expect_err("nots");
            assert_eq!(e.offset, 4 * MAX_DEPTH, "{e:?}");
            assert!(e.message.contains("nested more than 64 deep"), "{e:?}");
        }
        // Flat expressions of any length are not nesting.
        let flat = vec!["a"; 10_000].join(" or ");
        assert!(parse(&flat).is_ok());
    }

    #[test]
    fn satisfiability_work_is_bounded() {
        // 16 rules over 100,000 nodes: trying 2^16 combinations would take minutes, so it is
        // assumed satisfiable. It is not (every branch needs r0), so `true` shows the skip.
        let names: Vec<String> = (0..16).map(|i| format!("r{i}")).collect();
        let long = vec![names.join(" and "); 6_000].join(" or ");
        let e = parse(&format!("({long}) and not r0")).expect("parses");
        assert!(e.satisfiable());
        // Small enough to try: found out.
        assert!(
            !parse("(r0 and r1) and not r0")
                .expect("parses")
                .satisfiable()
        );
    }
}
