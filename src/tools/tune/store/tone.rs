//! `triaged tune --store --tone`: the rules' evidence for a tone fitted to what staff said in
//! the mailbox, and which emails' tone would change — before anything is written.
//!
//! Labels: an email has the tone when any of `--tone` is among staff's tones where a tone
//! correction is in force (a `tone/…` keyword changed, `#tone angry`, `#tone -polite`,
//! `ticket relabel --tone`; sample weight 1), else among the verdict's tones staff left (a
//! weak label, weight `--weak`). Features: the configured rules the email's stored hits name
//! (each once: a learned rule over a rule counts once), and with `--learn` phrases of the
//! customer's words the store kept. The fit is `triaged tune`'s tone fit
//! ([`super::super::tone::fit`]: logistic regression, classes balanced); its weights become
//! evidence as the rule engine reads it (the tone given when the evidence of what fired adds
//! up to 1), and `--learn FILE` writes them as tone rules (`learned.TONE.rule.ID` over a
//! configured rule, `learned.TONE.PHRASE` for a phrase) that `triaged check` checks and the
//! operator adds to the rules directory.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::Result;

use super::super::tone::{self as fit_tone, ToneFit};
use super::{
    LEARN_TEXT_BUDGET, MIN_CLASS_EMAILS, RuleChange, StoreArgs, TERMS_CHUNK, Toward, agreement,
    hit_counts, latest_within, moves, percent, rule_changes, write_change_table, write_move_lines,
};
use crate::config::Config;
use crate::score::{EVIDENCE_BAR, Rule};
use crate::store::TrainingEmail;
use crate::tune::learn::{self, LEARNED_PREFIX, LearnedLabel, MAX_EVIDENCE, Phrase};
use triaged_tune::eval::Report;
use triaged_tune::sparse::{Matrix, SparseVec};

/// Whether the tone set `set` (comma-separated) has any of `tones` (an empty set has none,
/// whatever `tones` holds).
pub fn has_tone(set: &str, tones: &[String]) -> bool {
    set.split(',')
        .filter(|t| !t.is_empty())
        .any(|t| tones.iter().any(|x| x == t))
}

/// An email's label in tone mode: whether it has the tone, by staff where they corrected its
/// tones (weight 1), else by the verdict they left (weight `weak`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneLabel {
    pub has: bool,
    pub weight: f64,
    pub corrected: bool,
}

impl ToneLabel {
    pub fn of(verdict: &str, staff: Option<&str>, tones: &[String], weak: f64) -> ToneLabel {
        match staff {
            Some(s) => ToneLabel {
                has: has_tone(s, tones),
                weight: 1.0,
                corrected: true,
            },
            None => ToneLabel {
                has: has_tone(verdict, tones),
                weight: weak,
                corrected: false,
            },
        }
    }
}

/// A configured rule's evidence for the tone, as the tuned evidence reads: a rule that gives
/// one of `tones` by itself (its `tone` without `evidence`) [`MAX_EVIDENCE`], a rule with
/// `evidence` for one its evidence, any other 0.
pub fn configured_evidence(rule: &Rule, tones: &[String]) -> f64 {
    match &rule.tone {
        Some(t) if tones.contains(t) => rule.evidence.unwrap_or(MAX_EVIDENCE),
        _ => 0.0,
    }
}

/// The fitted weights as evidence: the model gives the tone when `weights · x + bias > 0`,
/// the rule engine when the evidence of what fired adds up to [`EVIDENCE_BAR`]; so each weight
/// is divided by `-bias`, and capped at ±[`MAX_EVIDENCE`] as learned rules are (one that
/// decides alone reads 2, not 60). `None` when `bias >= 0`: the fit gives the tone to an email
/// no rule or phrase speaks for, which evidence cannot say.
pub fn evidence(weights: &[f64], bias: f64) -> Option<Vec<f64>> {
    (bias < 0.0).then(|| {
        weights
            .iter()
            .map(|w| (w / -bias * EVIDENCE_BAR).clamp(-MAX_EVIDENCE, MAX_EVIDENCE))
            .collect()
    })
}

/// Whether the evidence of the features `x` (columns of `evidence`) gives the tone.
pub fn gives(x: &SparseVec, evidence: &[f64]) -> bool {
    x.dot(evidence) >= EVIDENCE_BAR
}

/// An email's features: each configured rule its stored hits name (not one of an earlier
/// learned file, `learned.*`, which the file written now replaces), once; then the phrases
/// (`index`: a phrase's column) among its terms.
fn features(
    rule_hits: &[(usize, f64)],
    learned: &[bool],
    terms: &[String],
    index: &HashMap<&str, usize>,
) -> SparseVec {
    let mut pairs: Vec<(usize, f64)> = rule_hits
        .iter()
        .filter(|(i, _)| !learned[*i])
        .map(|&(i, _)| (i, 1.0))
        .collect();
    pairs.extend(
        terms
            .iter()
            .filter_map(|t| index.get(t.as_str()).map(|&j| (j, 1.0))),
    );
    pairs.sort_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    SparseVec::from_pairs(pairs)
}

/// What tone mode fits: the tones, the class names, the tone written.
struct Mode<'a> {
    tones: &'a [String],
    positive: String,
    other: String,
    learn_as: String,
}

impl Mode<'_> {
    fn name(&self, has: bool) -> &str {
        if has { &self.positive } else { &self.other }
    }
}

/// `tune --store --tone`: fit, report the figures and what would change, write only what
/// `--learn` asks for.
pub(super) fn tune_tones(
    config: &Config,
    args: &StoreArgs,
    since: i64,
    emails: &[TrainingEmail],
) -> Result<String> {
    let tones = &args.tones;
    anyhow::ensure!(
        tones.iter().all(|t| !t.is_empty()),
        "--tone names tones, comma-separated without an empty one (e.g. angry,frustrated)"
    );
    let positive = args.positive.clone().unwrap_or_else(|| match &tones[..] {
        [one] => one.clone(),
        _ => "positive".to_string(),
    });
    let mode = Mode {
        tones,
        other: format!("not-{positive}"),
        positive,
        learn_as: args.learn_as.clone().unwrap_or_else(|| tones[0].clone()),
    };
    let labels: Vec<ToneLabel> = emails
        .iter()
        .map(|e| ToneLabel::of(&e.tones, e.staff_tones.as_deref(), tones, args.weak))
        .collect();
    let current: Vec<bool> = emails.iter().map(|e| has_tone(&e.tones, tones)).collect();
    let mut train: Vec<usize> = (0..emails.len())
        .filter(|&i| labels[i].weight > 0.0)
        .collect();
    let all_fitted = train.len();
    if args.learn.is_some() {
        train = latest_within(&train, |i| emails[i].text.len(), LEARN_TEXT_BUDGET);
    }
    let y: Vec<bool> = train.iter().map(|&i| labels[i].has).collect();
    let with = y.iter().filter(|b| **b).count();
    anyhow::ensure!(
        with >= MIN_CLASS_EMAILS && y.len() - with >= MIN_CLASS_EMAILS,
        "The labels fitted have {with} emails with the tone ({}) and {} without: a fit needs \
         {MIN_CLASS_EMAILS} or more of each (widen --since; --weak 0 fits the corrections alone)",
        tones.join(", "),
        y.len() - with
    );

    let rules = config.rules.rules();
    let index: HashMap<&str, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let learned: Vec<bool> = rules
        .iter()
        .map(|r| r.id.starts_with(LEARNED_PREFIX))
        .collect();
    let rule_hits: Vec<Vec<(usize, f64)>> = emails
        .iter()
        .map(|e| hit_counts(&e.hits, rules, &index))
        .collect();
    // With --learn: the phrases that speak for or against the tone, columns after the rules'.
    let (train_terms, phrases) = if args.learn.is_some() {
        let texts: Vec<String> = train.iter().map(|&i| emails[i].text.clone()).collect();
        let classes: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
        learn::priority_phrases(
            &texts,
            &classes,
            2,
            &learn::LearnOptions {
                max_rules: args.max_rules,
                min_df: args.min_df.max(1),
                ..Default::default()
            },
        )
    } else {
        (vec![Vec::new(); train.len()], Vec::new())
    };
    let phrase_index: HashMap<&str, usize> = phrases
        .iter()
        .enumerate()
        .map(|(j, (p, _))| (p.as_str(), rules.len() + j))
        .collect();
    let x = Matrix::new(
        train
            .iter()
            .zip(&train_terms)
            .map(|(&i, t)| features(&rule_hits[i], &learned, t, &phrase_index))
            .collect(),
        rules.len() + phrases.len(),
    )?;
    let weights: Vec<f64> = train.iter().map(|&i| labels[i].weight).collect();
    let fitted = fit_tone::fit(&x, &y, Some(&weights), args.folds, args.seed)?;
    let (ev, bias_note) = match evidence(&fitted.model.weights, fitted.model.bias) {
        Some(ev) => (ev, None),
        None => (
            vec![0.0; x.n_features()],
            Some(
                "the fit gives the tone to an email nothing speaks for (its bias is not below 0), \
                 which evidence cannot say: no evidence is tuned",
            ),
        ),
    };

    // Every email of the period, fitted or not, under the tuned evidence.
    let mut tuned = Vec::with_capacity(emails.len());
    for (c, chunk) in emails.chunks(TERMS_CHUNK).enumerate() {
        let terms = if phrases.is_empty() {
            vec![Vec::new(); chunk.len()]
        } else {
            let texts: Vec<String> = chunk.iter().map(|e| e.text.clone()).collect();
            learn::row_terms(&texts, learn::LearnOptions::default().max_n)
        };
        for (j, t) in terms.iter().enumerate() {
            let f = features(&rule_hits[c * TERMS_CHUNK + j], &learned, t, &phrase_index);
            tuned.push(gives(&f, &ev));
        }
    }

    let path = config.store.path.display().to_string();
    let corrected = labels.iter().filter(|l| l.corrected).count();
    let mut out = String::new();
    let latest = if emails.len() == crate::store::MAX_TRAINING_EMAILS {
        " (the latest)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{path}: {} emails from customers{latest} received since {}; staff corrected the tones of {corrected}.",
        emails.len(),
        crate::wording::when(since),
    );
    let weak = if args.weak > 0.0 {
        format!(
            "else the verdict's tones staff left (weight {}, --weak)",
            args.weak
        )
    } else {
        "the verdicts staff left are not fitted (--weak 0)".to_string()
    };
    let _ = writeln!(
        out,
        "Labels: {} = any of {}: staff's tones where they corrected them (weight 1), {weak}; \
         {} emails fitted, {with} with the tone.",
        mode.positive,
        tones.join(", "),
        train.len()
    );
    if corrected == 0 {
        let _ = writeln!(
            out,
            "Staff corrected no tones: the fit can only reproduce the rules' own verdicts."
        );
    }
    if train.len() < all_fitted {
        let _ = writeln!(
            out,
            "--learn fits the latest {} of the {all_fitted} emails: their words add up to {} MiB, \
             the most phrase learning takes.",
            train.len(),
            LEARN_TEXT_BUDGET >> 20
        );
    }
    if args.learn.is_some() {
        let full = emails.iter().filter(|e| e.full_text).count();
        let _ = writeln!(
            out,
            "Phrases from the customers' words: {full} of {} emails with their first 4 KB, \
             the rest with the 300-character excerpt (stored before the words were kept).",
            emails.len()
        );
    }
    if let Some(note) = bias_note {
        let _ = writeln!(out, "Note: {note}.");
    }
    let _ = writeln!(
        out,
        "{}-fold cross-validation, seed {}\n",
        args.folds, args.seed
    );
    write_figures(
        &mut out,
        &mode,
        &labels,
        &current,
        &train,
        &y,
        &fitted,
        args.learn.is_some(),
        args.folds,
    )?;
    let columns = Columns {
        rules,
        phrases: &phrases,
        ev: &ev,
        x: &x,
        y: &y,
        corrected: train.iter().map(|&i| labels[i].corrected).collect(),
    };
    write_evidence(&mut out, &mode, &columns, args.show);
    write_moves(
        &mut out, &mode, emails, &labels, &current, &tuned, args.show,
    );
    write_file(&mut out, args, &mode, &columns, &path, since)?;
    Ok(out)
}

/// The cross-validated figures on the emails fitted: the configured rules' tones and the
/// tuned evidence (out of fold), and how each does on the emails staff corrected and those
/// they left.
#[allow(clippy::too_many_arguments)]
fn write_figures(
    out: &mut String,
    mode: &Mode<'_>,
    labels: &[ToneLabel],
    current: &[bool],
    train: &[usize],
    y: &[bool],
    fitted: &ToneFit,
    learning: bool,
    folds: usize,
) -> Result<()> {
    let classes = vec![mode.positive.clone(), mode.other.clone()];
    let gold: Vec<&str> = y.iter().map(|&b| mode.name(b)).collect();
    let configured: Vec<bool> = train.iter().map(|&i| current[i]).collect();
    let report = |pred: &[bool]| -> Result<Report> {
        let named: Vec<&str> = pred.iter().map(|&b| mode.name(b)).collect();
        triaged_tune::eval::evaluate(&gold, &named, Some(&classes))
    };
    let tuned_name = if learning {
        // The phrases were chosen on every email: the folds only refit their evidence.
        format!("rules + phrases, tuned evidence ({folds}-fold, optimistic)")
    } else {
        format!("rules, tuned evidence ({folds}-fold, out of fold)")
    };
    let mut summary = vec![
        // The tones are named in the labels' line above.
        ("tone rules, configured".to_string(), report(&configured)?),
        (tuned_name, report(&fitted.oof)?),
    ];
    if mode.tones.contains(&mode.learn_as) {
        // The learned file beside the pack: the pack's rules give the tone as before, the
        // evidence gives it besides.
        let either: Vec<bool> = configured
            .iter()
            .zip(&fitted.oof)
            .map(|(a, b)| *a || *b)
            .collect();
        summary.push((
            "either (the pack with the learned file, out of fold)".to_string(),
            report(&either)?,
        ));
    }
    fit_tone::summary_table(out, &mode.positive, &summary);
    let right = |pred: &[bool], corrected: bool| {
        agreement(pred, y, |j| labels[train[j]].corrected == corrected)
    };
    let (tuned_c, n_c) = right(&fitted.oof, true);
    let (configured_c, _) = right(&configured, true);
    let (tuned_l, n_l) = right(&fitted.oof, false);
    if n_c > 0 {
        let _ = writeln!(
            out,
            "\nOut of fold, the tuned evidence agrees with staff on {tuned_c} of the {n_c} emails whose tones they \
             corrected ({}; the configured rules: {configured_c}),\nand keeps {tuned_l} of the {n_l} verdicts staff left ({}).",
            percent(tuned_c, n_c),
            percent(tuned_l, n_l)
        );
    } else {
        let _ = writeln!(
            out,
            "\nOut of fold, the tuned evidence keeps {tuned_l} of the {n_l} verdicts staff left ({}).",
            percent(tuned_l, n_l)
        );
    }
    Ok(())
}

/// The fit's columns: the configured rules, then the phrases; the tuned evidence of each, and
/// the emails fitted (their features, labels, and which staff corrected).
struct Columns<'a> {
    rules: &'a [Rule],
    phrases: &'a [(String, usize)],
    ev: &'a [f64],
    x: &'a Matrix,
    y: &'a [bool],
    corrected: Vec<bool>,
}

impl Columns<'_> {
    /// Per column: the emails fitted it occurs in (with the tone, without), and of them the
    /// ones staff corrected.
    fn counts(&self) -> Vec<(usize, usize, usize)> {
        let mut n = vec![(0, 0, 0); self.ev.len()];
        for ((row, &has), &corrected) in self.x.rows().iter().zip(self.y).zip(&self.corrected) {
            for &(c, _) in row.entries() {
                if has {
                    n[c].0 += 1;
                } else {
                    n[c].1 += 1;
                }
                n[c].2 += usize::from(corrected);
            }
        }
        n
    }

    /// The tuned evidence as learned tone rules: every configured rule and phrase that
    /// weighs, weightiest for the tone first.
    fn learned(&self) -> LearnedLabel {
        let counts = self.counts();
        let mut phrases: Vec<Phrase> = (0..self.ev.len())
            .filter(|&c| self.ev[c].abs() >= 0.005)
            .map(|c| Phrase {
                phrase: match c.checked_sub(self.rules.len()) {
                    None => learn::rule_feature(&self.rules[c].id),
                    Some(j) => self.phrases[j].0.clone(),
                },
                evidence: self.ev[c],
                in_class: counts[c].0,
                in_other: counts[c].1,
            })
            .collect();
        phrases.sort_by(|a, b| {
            b.evidence
                .total_cmp(&a.evidence)
                .then(a.phrase.cmp(&b.phrase))
        });
        let with = self.y.iter().filter(|b| **b).count();
        LearnedLabel {
            phrases,
            rows_in_class: with,
            rows_other: self.y.len() - with,
            // `tone::fit`'s (the options' default: it chooses none).
            l2: triaged_tune::logreg::FitOptions::default().l2,
        }
    }
}

/// The rules whose evidence for the tone changes most, and the weightiest phrases.
fn write_evidence(out: &mut String, mode: &Mode<'_>, cols: &Columns<'_>, show: usize) {
    let counts = cols.counts();
    let changes = rule_changes(
        cols.rules
            .iter()
            .enumerate()
            .filter(|(i, _)| counts[*i].0 + counts[*i].1 > 0)
            .map(|(i, r)| RuleChange {
                rule: r.id.clone(),
                configured: configured_evidence(r, mode.tones),
                tuned: cols.ev[i],
                emails: counts[i].0 + counts[i].1,
                corrected: counts[i].2,
            })
            .collect(),
    );
    let _ = writeln!(
        out,
        "\nTuned (fitted on all {} emails): each rule's evidence for {}; the tone is given when the \
         evidence of what fired adds up to 1\n(configured: {MAX_EVIDENCE} for a rule whose own `tone` gives it, \
         its `evidence` for a rule with one, else 0).",
        cols.y.len(),
        mode.positive
    );
    write_change_table(out, &changes, show, "evidence");
    if !cols.phrases.is_empty() {
        let n = cols.rules.len();
        let mut top: Vec<(&str, f64)> = cols
            .phrases
            .iter()
            .enumerate()
            .map(|(j, (p, _))| (p.as_str(), cols.ev[n + j]))
            .filter(|(_, e)| e.abs() >= 0.005)
            .collect();
        let weighing = top.len();
        top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(b.0)));
        let list: Vec<String> = top
            .iter()
            .take(show)
            .map(|(p, e)| format!("{p:?} {e:+.2}"))
            .collect();
        let _ = writeln!(
            out,
            "  learned phrases: {weighing} (the weightiest: {})",
            list.join(", ")
        );
    }
}

/// Which emails' tone would change with the tuned evidence in place of the rules' tones
/// (every email of the period, fitted or not), against their labels.
fn write_moves(
    out: &mut String,
    mode: &Mode<'_>,
    emails: &[TrainingEmail],
    labels: &[ToneLabel],
    current: &[bool],
    tuned: &[bool],
    show: usize,
) {
    let received: Vec<i64> = emails.iter().map(|e| e.received_at).collect();
    let has: Vec<bool> = labels.iter().map(|l| l.has).collect();
    let moved = moves(current, tuned, &has, &received);
    let count = |t: Toward| moved.iter().filter(|m| m.toward == t).count();
    let _ = writeln!(
        out,
        "\nEmails whose tone would change with the tuned evidence in place of the rules' tones: {} of {} \
         ({} to their label, {} away from it)",
        moved.len(),
        emails.len(),
        count(Toward::Label),
        count(Toward::Away),
    );
    let _ = writeln!(
        out,
        "(label: staff's tones where they corrected them, else the verdict's they left)"
    );
    if mode.tones.contains(&mode.learn_as) {
        let gain = (0..emails.len())
            .filter(|&i| !current[i] && tuned[i])
            .count();
        let _ = writeln!(
            out,
            "(with the learned file beside the pack as it is, whose rules still give their tones, only the {gain} \
             that gain {} change)",
            mode.learn_as
        );
    }
    write_move_lines(out, &moved, emails, show, 12, |m| {
        let label = &labels[m.email];
        (
            mode.name(m.from).to_string(),
            mode.name(m.to).to_string(),
            label.corrected.then(|| mode.name(label.has).to_string()),
        )
    });
}

/// Write the tuned evidence as tone rules where `--learn` asks, or say that nothing was
/// written and how to use it.
fn write_file(
    out: &mut String,
    args: &StoreArgs,
    mode: &Mode<'_>,
    cols: &Columns<'_>,
    path: &str,
    since: i64,
) -> Result<()> {
    let Some(file) = &args.learn else {
        let _ = writeln!(
            out,
            "\nNothing written. To use this evidence: --learn FILE writes it as rules giving the tone {} \
             (--learn-as names another), with phrases learned from the customers' words; put the file in \
             the rules directory, run `triaged check`, then reload (SIGHUP).",
            mode.learn_as
        );
        return Ok(());
    };
    let learned = cols.learned();
    let header = format!(
        "Learned tone rules, written by `triaged tune --store --tone {} --learn` from the store {path}\n\
         (customer emails since {}; staff's corrected tones, and the verdicts they left at weight {}): {} emails fitted.\n\
         Each rule's evidence adds to the tone {}; the tone is given when the rules that fire add up to 1\n\
         (docs/rules.md, \"Evidence\"). Edit or delete rules freely: `triaged check` checks the file,\n\
         `triaged explain` shows each rule's share.",
        mode.tones.join(","),
        crate::wording::when(since),
        args.weak,
        cols.y.len(),
        mode.learn_as
    );
    let text = learn::write_rules(&header, "tone", &[(mode.learn_as.clone(), learned.clone())]);
    std::fs::write(file, &text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    let _ = writeln!(
        out,
        "\nWrote {} ({} rules giving the tone {}). The running rules are unchanged: put it in the rules \
         directory, run `triaged check`, then reload.",
        file.display(),
        learned.phrases.len(),
        mode.learn_as
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::RuleSet;

    fn tones(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_tone_correction_is_a_label_of_weight_one_and_the_verdicts_tones_a_weak_one() {
        let angry = tones(&["angry", "frustrated"]);
        for (verdict, staff, weak, want) in [
            // Staff added a tone: the email has it.
            ("polite", Some("angry,polite"), 0.3, (true, 1.0, true)),
            // Staff took it away (#tone -angry): it has not.
            ("angry", Some(""), 0.3, (false, 1.0, true)),
            // Staff corrected another tone: the tones they left count, at weight 1.
            (
                "frustrated,polite",
                Some("frustrated"),
                0.0,
                (true, 1.0, true),
            ),
            // Left as it was: the verdict's tones, at --weak.
            ("frustrated", None, 0.3, (true, 0.3, false)),
            ("polite", None, 0.5, (false, 0.5, false)),
            // Not a prefix match: "angryish" is another tone.
            ("angryish", None, 0.3, (false, 0.3, false)),
        ] {
            let l = ToneLabel::of(verdict, staff, &angry, weak);
            assert_eq!(
                (l.has, l.weight, l.corrected),
                want,
                "{verdict} / {staff:?}"
            );
        }
        // `--tone angry,` names an empty tone: an email with no tones still has none.
        assert!(!has_tone("", &tones(&["angry", ""])));
        assert!(has_tone("angry", &tones(&["angry", ""])));
    }

    #[test]
    fn the_configured_evidence_reads_a_rules_own_tone_as_deciding_alone() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("r.toml");
        std::fs::write(
            &p,
            r#"
[[rule]]
id = "furious"
keywords = ["furious"]
tone = "angry"

[[rule]]
id = "learned.angry.fed-up"
keywords = ["fed up"]
tone = "angry"
evidence = 0.6

[[rule]]
id = "polite"
keywords = ["please"]
tone = "polite"

[[rule]]
id = "outage"
keywords = ["down"]
weight = 5.0
"#,
        )
        .expect("write");
        let rules = RuleSet::load(&[&p]).unwrap_or_else(|e| panic!("{e:?}"));
        let got: Vec<f64> = rules
            .rules()
            .iter()
            .map(|r| configured_evidence(r, &tones(&["angry"])))
            .collect();
        assert_eq!(got, [MAX_EVIDENCE, 0.6, 0.0, 0.0]);
    }

    #[test]
    fn fitted_weights_become_evidence_against_the_bias_capped_as_learned_rules_are() {
        let ev = evidence(&[3.0, -1.5, 30.0, -30.0, 0.0], -3.0).expect("a negative bias");
        assert_eq!(ev, [1.0, -0.5, MAX_EVIDENCE, -MAX_EVIDENCE, 0.0]);
        // The model's decision and the engine's agree where nothing is capped.
        let x = SparseVec::from_pairs(vec![(0, 1.0)]);
        assert!(gives(&x, &ev), "3 - 3 = 0: at the bar");
        let x = SparseVec::from_pairs(vec![(0, 1.0), (1, 1.0)]);
        assert!(!gives(&x, &ev), "1 - 0.5 < 1");
        let x = SparseVec::from_pairs(vec![(1, 1.0), (2, 1.0)]);
        assert!(gives(&x, &ev), "2 - 0.5 >= 1");
        // A fit that gives the tone to an email nothing speaks for has no evidence to write.
        assert_eq!(evidence(&[1.0], 0.5), None);
        assert_eq!(evidence(&[1.0], 0.0), None);
    }

    #[test]
    fn an_emails_features_are_its_rules_once_and_its_phrases_without_earlier_learned_rules() {
        let learned = [false, true, false];
        let index: HashMap<&str, usize> = [("fed up", 3), ("thanks", 4)].into_iter().collect();
        let terms = tones(&["fed up", "hello", "thanks"]);
        let f = features(&[(2, 3.0), (0, 1.0), (1, 1.0)], &learned, &terms, &index);
        assert_eq!(f.entries(), [(0, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)]);
    }
}
