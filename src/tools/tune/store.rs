//! `triaged tune --store`: the rules' weights and thresholds (with `--learn`, phrases beside
//! them) fitted to what staff said in the mailbox, and what would change — before anything is
//! written. With `--tone`, the rules' evidence for a tone instead (`store/tone.rs`).
//!
//! Labels: the customer emails of the period, each labelled with staff's priority where a
//! correction is in force (sample weight 1), else with the verdict staff left as it was, a
//! weak label (sample weight `--weak`, 0.3 by default: staff may not have looked). Features:
//! the rule hits the store kept for each email (rule and occurrence count), so the fit sees
//! exactly what the daemon saw, senders and history signals included. Phrases (`--learn`) are
//! learned from the customer's words the store keeps (the first 4 KB; the 300-character
//! excerpt for emails stored before).
//!
//! The fit is `triaged tune`'s priority fit ([`super::priority::fit`]); this file builds its
//! labels, re-scores the stored hits under the configured and the tuned weights (group caps and
//! thresholds as the scorer applies them) and reports the difference: which emails would move
//! and which rules gain or lose weight. It writes only with `--out` (and `--learn`): tuning
//! never changes the running rules; the operator includes the file, `triaged check`s it and
//! reloads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::priority::{self, Figures, FitArgs, Fitted, Problem};
use crate::config::Config;
use crate::score::{Group, Priority, Rule, Thresholds};
use crate::store::{StoredHit, TrainingEmail};
use crate::tune::learn::{self, LEARNED_PREFIX};
use triaged_tune::sparse::{Matrix, SparseVec};

/// The sample weight of a verdict staff left as it was, unless `--weak` says otherwise.
pub const DEFAULT_WEAK: f64 = 0.3;

/// With `--learn` the fit takes the latest emails whose words add up to at most this: phrase
/// learning holds every n-gram of every email fitted (about 25 times the text), so this keeps
/// it within a few hundred MB, whatever the period (8,000 emails of 1 KB).
pub const LEARN_TEXT_BUDGET: usize = 8 << 20;

/// Why `--learn` is refused where the store keeps no customer's words.
pub const KEEPS_NO_TEXT: &str = "--learn learns phrases from the customers' words, and [store] keep_text = false keeps \
     none: tune without --learn, or set keep_text = true (new mail then keeps its first 4 KB)";

/// Emails whose learned phrases are found at once when the moves are worked out.
const TERMS_CHUNK: usize = 2_000;

/// The latest of `rows` (oldest first) whose `size`s add up to at most `budget` (at least
/// one), oldest first.
pub fn latest_within(rows: &[usize], size: impl Fn(usize) -> usize, budget: usize) -> Vec<usize> {
    let mut total = 0;
    let mut keep = 0;
    for &i in rows.iter().rev() {
        total += size(i);
        if total > budget && keep > 0 {
            break;
        }
        keep += 1;
    }
    rows[rows.len() - keep..].to_vec()
}

/// The least and the most urgent class each need this many emails (cross-validation folds
/// and the inner folds that choose L2 must each see some); a rarer end class is counted with
/// its neighbour.
pub const MIN_CLASS_EMAILS: usize = 3;

/// What `triaged tune --store` fits, and where it writes.
#[derive(Debug, Clone)]
pub struct StoreArgs {
    /// The period: emails received this long before now.
    pub since: Duration,
    /// The sample weight of a verdict staff left as it was (0: corrections alone).
    pub weak: f64,
    pub folds: usize,
    pub seed: u64,
    /// Write the weights file here.
    pub out: Option<PathBuf>,
    /// Learn phrases and write them here (with `out`).
    pub learn: Option<PathBuf>,
    pub max_rules: usize,
    pub min_df: usize,
    /// Emails that would move, and rules that change, listed (the largest changes first).
    pub show: usize,
    /// Tone mode (`--tone`): an email has the tone when staff's tones (else the verdict's)
    /// include any of these; the rules' evidence for it is fitted instead of the weights.
    pub tones: Vec<String>,
    /// Tone mode: the name of the positive class (default: the tones joined by `|`).
    pub positive: Option<String>,
    /// Tone mode with `--learn`: the tone the learned rules attach (default: the first of
    /// `tones`).
    pub learn_as: Option<String>,
}

/// An email's label for the fit: staff's priority where they corrected it (weight 1), else
/// the verdict's (weight `weak`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    pub priority: Priority,
    pub weight: f64,
    pub corrected: bool,
}

impl Label {
    pub fn of(verdict: Priority, staff: Option<Priority>, weak: f64) -> Label {
        match staff {
            Some(p) => Label {
                priority: p,
                weight: 1.0,
                corrected: true,
            },
            None => Label {
                priority: verdict,
                weight: weak,
                corrected: false,
            },
        }
    }
}

/// Least urgent first.
fn rank(p: Priority) -> usize {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

/// The classes the fit uses, least urgent first: the priorities among `labels`, where the
/// least or most urgent has fewer than [`MIN_CLASS_EMAILS`] emails counted with its
/// neighbour (said in the notes). An error when fewer than two classes are left.
pub fn classes(labels: &[Priority]) -> Result<(Vec<Priority>, Vec<String>)> {
    let mut count = [0usize; 4];
    for p in labels {
        count[rank(*p)] += 1;
    }
    let mut order: Vec<Priority> = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ]
    .into_iter()
    .filter(|p| count[rank(*p)] > 0)
    .collect();
    let mut notes = Vec::new();
    let mut rows: Vec<usize> = order.iter().map(|p| count[rank(*p)]).collect();
    while order.len() >= 2 {
        let (first, last) = (rows[0], rows[rows.len() - 1]);
        // The rarer end goes first; each merge moves its emails to the neighbour.
        let end = if first < MIN_CLASS_EMAILS && (first <= last || last >= MIN_CLASS_EMAILS) {
            0
        } else if last < MIN_CLASS_EMAILS {
            order.len() - 1
        } else {
            break;
        };
        let inward = if end == 0 { 1 } else { end - 1 };
        notes.push(format!(
            "{} ({} email{}) counted as {}: too few for a threshold of its own",
            order[end].as_str(),
            rows[end],
            if rows[end] == 1 { "" } else { "s" },
            order[inward].as_str()
        ));
        rows[inward] += rows[end];
        order.remove(end);
        rows.remove(end);
    }
    anyhow::ensure!(
        order.len() >= 2,
        "The labels of the period are all {}: a fit needs emails of at least two priorities, \
         {MIN_CLASS_EMAILS} or more of the least and of the most urgent (widen --since)",
        order.first().map_or("missing", |p| p.as_str())
    );
    Ok((order, notes))
}

/// The class of `p` among `order` (least urgent first): the nearest at or below it, else the
/// least urgent (a priority counted with its neighbour).
pub fn class_of(p: Priority, order: &[Priority]) -> usize {
    order.iter().rposition(|c| rank(*c) <= rank(p)).unwrap_or(0)
}

/// The configured threshold of a priority (low has none: it is what lies below normal's).
fn level(th: &Thresholds, p: Priority) -> f64 {
    match p {
        Priority::Low => f64::NEG_INFINITY,
        Priority::Normal => th.normal,
        Priority::High => th.high,
        Priority::Urgent => th.urgent,
    }
}

/// The fitted cut points (`cuts`, between the classes `order`, least urgent first) as
/// thresholds of the priorities they separate, scaled so the gap between the first two reads
/// like the configured gap between those priorities (with two classes, a unit of the fit is
/// the configured normal..high gap). A priority that is no class of the fit (no email, or
/// too few, labelled so) lies at the configured gap beyond the last fitted threshold, or,
/// between two fitted ones, at the upper one's (an empty range: the fit put each email of
/// the period in one of its classes, and a threshold between would move some). Returns the
/// scale, the thresholds, and a note for each threshold so placed.
pub fn place_thresholds(
    th: &Thresholds,
    cuts: &[f64],
    order: &[Priority],
) -> (f64, Thresholds, Vec<String>) {
    let fitted_gap = match cuts {
        [a, b, ..] => (b - a).max(1e-9),
        _ => 1.0,
    };
    let configured_gap = match order {
        [_, a, b, ..] => level(th, *b) - level(th, *a),
        _ => th.high - th.normal,
    };
    let scale = configured_gap.max(1e-9) / fitted_gap;
    // Normal, high, urgent: fitted where a class begins at a cut.
    let levels = [Priority::Normal, Priority::High, Priority::Urgent];
    let mut at: [Option<f64>; 3] = [None; 3];
    for (j, p) in order.iter().enumerate().skip(1) {
        if let Some(i) = levels.iter().position(|l| l == p) {
            at[i] = cuts.get(j - 1).map(|c| c * scale);
        }
    }
    let fitted = at;
    let mut notes = Vec::new();
    for i in 0..3 {
        if fitted[i].is_some() {
            continue;
        }
        let below = (0..i).rev().find(|&j| fitted[j].is_some());
        let above = (i + 1..3).find(|&j| fitted[j].is_some());
        let c = |j: usize| level(th, levels[j]);
        let (value, how) = match (below, above) {
            // Between two fitted classes the fit put every email in one or the other: a
            // threshold between them would move emails it placed; at the upper one's, its
            // range is empty.
            (Some(_), Some(b)) => (
                fitted[b].unwrap_or(0.0),
                format!(
                    "at {}'s: the fit puts no email between, so nothing is {} with these \
                     thresholds (set it by hand to keep one)",
                    levels[b].as_str(),
                    levels[i].as_str()
                ),
            ),
            (Some(a), None) => (
                fitted[a].unwrap_or(0.0) + (c(i) - c(a)),
                format!("at the configured gap above {}'s", levels[a].as_str()),
            ),
            (None, Some(b)) => (
                fitted[b].unwrap_or(0.0) - (c(b) - c(i)),
                format!("at the configured gap below {}'s", levels[b].as_str()),
            ),
            // Two classes at least: some threshold is fitted.
            (None, None) => (c(i), "as configured".to_string()),
        };
        at[i] = Some(value);
        let what = if order.contains(&levels[i]) {
            format!("{} is the least urgent class fitted", levels[i].as_str())
        } else {
            format!("{} is no class of the fit", levels[i].as_str())
        };
        notes.push(format!(
            "{what}: its threshold ({value:.2}) is placed {how}"
        ));
    }
    let [normal, high, urgent] = at.map(|v| v.unwrap_or(0.0));
    (
        scale,
        Thresholds {
            urgent,
            high,
            normal,
            no_evidence: th.no_evidence,
        },
        notes,
    )
}

/// The stored hits of an email as (rule index, occurrences) of the configured rules: hits of
/// rules no longer configured are left out. Hits stored before their count was (0) count
/// what their weight says under the rule's weight now, else once.
pub fn hit_counts(
    hits: &[StoredHit],
    rules: &[Rule],
    index: &HashMap<&str, usize>,
) -> Vec<(usize, f64)> {
    hits.iter()
        .filter_map(|h| {
            let &i = index.get(h.rule.as_str())?;
            let count = if h.count > 0 {
                f64::from(h.count)
            } else {
                let w = rules[i].weight;
                let n = if w != 0.0 {
                    (h.weight / w).round()
                } else {
                    1.0
                };
                n.clamp(1.0, f64::from(rules[i].max_hits.max(1)))
            };
            Some((i, count))
        })
        .collect()
}

/// A score from rule hits, as the scorer sums it: each hit's weight times its count, each
/// group's sum clamped to its caps; `weighed`: some hit weighs (else the priority is
/// `no_evidence`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescored {
    pub score: f64,
    pub weighed: bool,
}

impl Rescored {
    /// Rule hits `(rule index, count)` under `weight` (a rule's weight by its index).
    pub fn of(
        hits: &[(usize, f64)],
        rules: &[Rule],
        groups: &[Group],
        weight: impl Fn(usize) -> f64,
    ) -> Rescored {
        let mut score = 0.0;
        let mut group_sums = vec![0.0; groups.len()];
        let mut weighed = false;
        for &(i, count) in hits {
            let w = weight(i) * count;
            weighed |= w != 0.0;
            score += w;
            if let Some(g) = rules[i].group.filter(|g| *g < groups.len()) {
                group_sums[g] += w;
            }
        }
        for (g, raw) in groups.iter().zip(group_sums) {
            let capped = raw
                .min(g.max.unwrap_or(f64::INFINITY))
                .max(g.min.unwrap_or(f64::NEG_INFINITY));
            score += capped - raw;
        }
        Rescored { score, weighed }
    }

    /// Plus `extra` (learned phrases, which belong to no group).
    pub fn plus(self, extra: f64) -> Rescored {
        Rescored {
            score: self.score + extra,
            weighed: self.weighed || extra != 0.0,
        }
    }

    pub fn priority(&self, th: &Thresholds) -> Priority {
        if self.weighed {
            th.priority(self.score)
        } else {
            th.no_evidence
        }
    }
}

/// How an email's priority would move with the tuned weights, against its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Toward {
    /// To its label: staff's priority, or back to the verdict staff left.
    Label,
    /// Away from its label (it had it).
    Away,
    /// From one priority that is not its label to another.
    Other,
}

/// An email that would move: its priority (or, in tone mode, whether it has the tone).
#[derive(Debug, Clone, PartialEq)]
pub struct Move<T> {
    /// Index into the emails.
    pub email: usize,
    pub from: T,
    pub to: T,
    pub toward: Toward,
}

/// The emails whose label differs between `old` and `new` (a priority, or whether an email
/// has the tone), against their `labels`; those that reach their label first, then those
/// that leave it, then the rest, each newest first (`received`).
pub fn moves<T: Copy + PartialEq>(
    old: &[T],
    new: &[T],
    labels: &[T],
    received: &[i64],
) -> Vec<Move<T>> {
    let mut out: Vec<Move<T>> = (0..old.len())
        .filter(|&i| old[i] != new[i])
        .map(|i| Move {
            email: i,
            from: old[i],
            to: new[i],
            toward: if new[i] == labels[i] {
                Toward::Label
            } else if old[i] == labels[i] {
                Toward::Away
            } else {
                Toward::Other
            },
        })
        .collect();
    out.sort_by_key(|m| (m.toward, std::cmp::Reverse(received[m.email]), m.email));
    out
}

/// A rule's weight, configured and tuned, with the emails it hit.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    pub rule: String,
    pub configured: f64,
    pub tuned: f64,
    pub emails: usize,
    /// Of them, emails staff corrected.
    pub corrected: usize,
}

/// The rules whose weight the fit changes, the largest change first (ties by name).
pub fn rule_changes(mut changes: Vec<RuleChange>) -> Vec<RuleChange> {
    changes.retain(|c| (c.tuned - c.configured).abs() >= 0.005);
    changes.sort_by(|a, b| {
        (b.tuned - b.configured)
            .abs()
            .total_cmp(&(a.tuned - a.configured).abs())
            .then(a.rule.cmp(&b.rule))
    });
    changes
}

/// Of the fitted rows `keep` picks, how many `pred` gives their label `y`, and how many it
/// picks (`pred`, `y`, `keep`'s argument: one per fitted row).
pub fn agreement<T: PartialEq>(
    pred: &[T],
    y: &[T],
    keep: impl Fn(usize) -> bool,
) -> (usize, usize) {
    let rows: Vec<usize> = (0..y.len()).filter(|&j| keep(j)).collect();
    (
        rows.iter().filter(|&&j| pred[j] == y[j]).count(),
        rows.len(),
    )
}

/// "Rules that gain or lose `what` most", and a line for each of the first `show` changes.
pub fn write_change_table(out: &mut String, changes: &[RuleChange], show: usize, what: &str) {
    let _ = writeln!(
        out,
        "\nRules that gain or lose {what} most ({} of {} changed; rules no email hit keep theirs):",
        changes.len().min(show),
        changes.len()
    );
    let _ = writeln!(
        out,
        "  {:<26} {:>10} {:>8} {:>8} {:>7} {:>10}",
        "rule", "configured", "tuned", "change", "emails", "corrected"
    );
    for c in changes.iter().take(show) {
        let _ = writeln!(
            out,
            "  {:<26} {:>10.2} {:>8.2} {:>+8.2} {:>7} {:>10}",
            c.rule,
            c.configured,
            c.tuned,
            c.tuned - c.configured,
            c.emails,
            c.corrected
        );
    }
}

/// `triaged tune --store`: fit, report the figures and the difference, write only what
/// `--out` and `--learn` ask for.
pub fn tune_store(config: &Config, args: &StoreArgs, now: i64) -> Result<String> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.weak),
        "--weak must be between 0 and 1 (the weight of a verdict staff left, against 1 for a correction), got {}",
        args.weak
    );
    if !args.tones.is_empty() {
        anyhow::ensure!(
            args.out.is_none(),
            "tone mode writes no weights file (tones are labels, not scores): --learn FILE writes \
             the tuned evidence for the tone as a rules file"
        );
    } else if args.learn.is_some() && args.out.is_none() {
        anyhow::bail!(
            "--learn needs --out FILE too: the learned phrases' weights go with the thresholds \
             and the rules' weights fitted beside them"
        );
    }
    if args.learn.is_some() && !config.store.keep_text {
        anyhow::bail!("{KEEPS_NO_TEXT}");
    }
    let (since, emails) = period(config, args, now)?;
    if !args.tones.is_empty() {
        return tone::tune_tones(config, args, since, &emails);
    }
    let path = &config.store.path;
    let data = Data::new(config, &emails, args.weak);
    let mut train: Vec<usize> = (0..emails.len())
        .filter(|&i| data.labels[i].weight > 0.0)
        .collect();
    let all_fitted = train.len();
    if args.learn.is_some() {
        train = latest_within(&train, |i| emails[i].text.len(), LEARN_TEXT_BUDGET);
    }
    let train_labels: Vec<Priority> = train.iter().map(|&i| data.labels[i].priority).collect();
    let (order, notes) = classes(&train_labels)?;
    let names: Vec<String> = order.iter().map(|p| p.as_str().to_string()).collect();
    let y: Vec<usize> = train_labels.iter().map(|p| class_of(*p, &order)).collect();
    let weights: Vec<f64> = train.iter().map(|&i| data.labels[i].weight).collect();
    let texts: Vec<String> = train.iter().map(|&i| emails[i].text.clone()).collect();
    let rules = config.rules.rules();
    let x = Matrix::new(
        train
            .iter()
            .map(|&i| SparseVec::from_pairs(data.hits[i].clone()))
            .collect(),
        rules.len(),
    )?;
    let fitted = priority::fit(
        config,
        Problem {
            x,
            y: &y,
            k: order.len(),
            sample_weight: Some(&weights),
            texts: &texts,
        },
        &FitArgs {
            folds: args.folds,
            seed: args.seed,
            learn: args.learn.is_some(),
            max_rules: args.max_rules,
            min_df: args.min_df,
        },
        |m| {
            let (scale, th, _) = place_thresholds(&config.thresholds, &m.cuts, &order);
            (scale, th)
        },
    )?;
    let (_, _, placed) = place_thresholds(&config.thresholds, &fitted.model.cuts, &order);
    let notes: Vec<String> = notes.into_iter().chain(placed).collect();

    let mut out = String::new();
    let header = Header {
        all_fitted,
        path: path.display().to_string(),
        since,
        emails: &emails,
        labels: &data.labels,
        train: train.len(),
        args,
        names: &names,
        notes: &notes,
    };
    header.write(&mut out);
    let figures = data.figures(&mut out, &fitted, &train, &y, &order, args.folds)?;
    let tuned = data.tuned(config, &emails, &fitted)?;
    write_rule_changes(&mut out, config, &data, &train, &fitted, args.show);
    write_moves(&mut out, &emails, &data, &tuned, args.show);
    write_files(&mut out, args, &header, &fitted, &figures)?;
    Ok(out)
}

/// The start of the period and its customer emails (at least one), oldest first.
fn period(config: &Config, args: &StoreArgs, now: i64) -> Result<(i64, Vec<TrainingEmail>)> {
    let path = &config.store.path;
    let since = now.saturating_sub(i64::try_from(args.since.as_secs()).unwrap_or(i64::MAX));
    let emails = crate::tools::open_store(config)?.training(since)?;
    if emails.is_empty() {
        anyhow::bail!(
            "{}: no triaged email from a customer received since {}: nothing to tune on",
            path.display(),
            crate::wording::when(since)
        );
    }
    Ok((since, emails))
}

/// Every email's label, stored hits as features, and its priority under the configured rules.
struct Data {
    labels: Vec<Label>,
    hits: Vec<Vec<(usize, f64)>>,
    /// The priority the configured rules give the stored hits now.
    current: Vec<Priority>,
    /// Emails whose stored verdict differs from `current` (rules or weights changed since).
    stale: usize,
}

impl Data {
    fn new(config: &Config, emails: &[TrainingEmail], weak: f64) -> Data {
        let rules = config.rules.rules();
        let groups = config.rules.groups();
        let index: HashMap<&str, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let hits: Vec<Vec<(usize, f64)>> = emails
            .iter()
            .map(|e| hit_counts(&e.hits, rules, &index))
            .collect();
        let current: Vec<Priority> = hits
            .iter()
            .map(|h| {
                Rescored::of(h, rules, groups, |i| rules[i].weight).priority(&config.thresholds)
            })
            .collect();
        let stale = emails
            .iter()
            .zip(&current)
            .filter(|(e, p)| e.priority != **p)
            .count();
        Data {
            labels: emails
                .iter()
                .map(|e| Label::of(e.priority, e.staff_priority, weak))
                .collect(),
            hits,
            current,
            stale,
        }
    }

    /// The cross-validated figures on the emails fitted (`train`): macro-F1 of the configured
    /// and the tuned weights, and how each does on the emails staff corrected and on those
    /// they left. Returns the macro-F1s for the weights file's note.
    fn figures(
        &self,
        out: &mut String,
        fitted: &Fitted,
        train: &[usize],
        y: &[usize],
        order: &[Priority],
        folds: usize,
    ) -> Result<(f64, f64)> {
        let names: Vec<String> = order.iter().map(|p| p.as_str().to_string()).collect();
        let gold: Vec<&str> = y.iter().map(|&c| names[c].as_str()).collect();
        let configured: Vec<usize> = train
            .iter()
            .map(|&i| class_of(self.current[i], order))
            .collect();
        let name = |v: &[usize]| -> Vec<&str> { v.iter().map(|&c| names[c].as_str()).collect() };
        let configured_report =
            triaged_tune::eval::evaluate(&gold, &name(&configured), Some(&names))?;
        let tuned_report = triaged_tune::eval::evaluate(&gold, &name(&fitted.oof), Some(&names))?;
        priority::priority_table(
            out,
            &names[names.len() - 1],
            &[
                (
                    "rules, configured weights".to_string(),
                    configured_report.clone(),
                ),
                (fitted.tuned_name(folds), tuned_report.clone()),
            ],
        );
        let right = |pred: &[usize], corrected: bool| {
            agreement(pred, y, |j| self.labels[train[j]].corrected == corrected)
        };
        let (tuned_c, n_c) = right(&fitted.oof, true);
        let (configured_c, _) = right(&configured, true);
        let (tuned_l, n_l) = right(&fitted.oof, false);
        if n_c > 0 {
            let _ = writeln!(
                out,
                "\nOut of fold, the tuned weights give {tuned_c} of the {n_c} corrected emails staff's priority \
                 ({}; the configured rules: {configured_c}),\nand keep {tuned_l} of the {n_l} verdicts staff left ({}).",
                percent(tuned_c, n_c),
                percent(tuned_l, n_l)
            );
        } else {
            let _ = writeln!(
                out,
                "\nOut of fold, the tuned weights keep {tuned_l} of the {n_l} verdicts staff left ({}).",
                percent(tuned_l, n_l)
            );
        }
        Ok((tuned_report.macro_f1, configured_report.macro_f1))
    }

    /// Every email's priority under the tuned weights, thresholds and learned phrases.
    fn tuned(
        &self,
        config: &Config,
        emails: &[TrainingEmail],
        fitted: &Fitted,
    ) -> Result<Vec<Priority>> {
        let rules = config.rules.rules();
        let groups = config.rules.groups();
        let tuned: HashMap<&str, f64> = fitted
            .weights
            .iter()
            .map(|(id, w)| (id.as_str(), *w))
            .collect();
        let learning = fitted.learned.is_some();
        let weight = |i: usize| -> f64 {
            let r = &rules[i];
            if learning && r.id.starts_with(LEARNED_PREFIX) {
                // The learned file written now replaces an earlier one.
                0.0
            } else {
                tuned.get(r.id.as_str()).copied().unwrap_or(r.weight)
            }
        };
        let phrases: HashMap<String, f64> = fitted
            .phrase_weights()
            .unwrap_or_default()
            .into_iter()
            .map(|(p, w, _)| (p, w))
            .collect();
        // The learned phrases each email has, a chunk of emails at a time: every email's
        // terms at once would hold the period's words many times over.
        let mut extra = vec![0.0; emails.len()];
        if !phrases.is_empty() {
            let max_n = learn::LearnOptions::default().max_n;
            for (c, chunk) in emails.chunks(TERMS_CHUNK).enumerate() {
                let texts: Vec<String> = chunk.iter().map(|e| e.text.clone()).collect();
                for (j, terms) in learn::row_terms(&texts, max_n).iter().enumerate() {
                    extra[c * TERMS_CHUNK + j] = terms.iter().filter_map(|w| phrases.get(w)).sum();
                }
            }
        }
        Ok(self
            .hits
            .iter()
            .zip(&extra)
            .map(|(h, extra)| {
                Rescored::of(h, rules, groups, weight)
                    .plus(*extra)
                    .priority(&fitted.thresholds)
            })
            .collect())
    }
}

fn percent(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.0}%", 100.0 * n as f64 / of as f64)
    }
}

/// The report's first lines: what was read and how it is labelled.
struct Header<'a> {
    /// Emails with a label of weight above 0, before `--learn` kept the latest.
    all_fitted: usize,
    path: String,
    since: i64,
    emails: &'a [TrainingEmail],
    labels: &'a [Label],
    /// Emails fitted (weight above 0).
    train: usize,
    args: &'a StoreArgs,
    names: &'a [String],
    notes: &'a [String],
}

impl Header<'_> {
    fn corrected(&self) -> usize {
        self.labels.iter().filter(|l| l.corrected).count()
    }

    /// Where the labels come from, for the files' notes.
    fn from(&self) -> String {
        format!(
            "the store {} (customer emails since {}; staff's corrections, and the verdicts they left at weight {})",
            self.path,
            crate::wording::when(self.since),
            self.args.weak
        )
    }

    fn write(&self, out: &mut String) {
        let n = self.emails.len();
        let latest = if n == crate::store::MAX_TRAINING_EMAILS {
            " (the latest)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{}: {n} emails from customers{latest} received since {}; staff corrected the priority of {}.",
            self.path,
            crate::wording::when(self.since),
            self.corrected()
        );
        let weak = if self.args.weak > 0.0 {
            format!(
                "else the verdict staff left as it was (weight {}, --weak)",
                self.args.weak
            )
        } else {
            "the verdicts staff left are not fitted (--weak 0)".to_string()
        };
        let _ = writeln!(
            out,
            "Labels: staff's priority where they corrected it (weight 1), {weak}; {} emails fitted.",
            self.train
        );
        if self.corrected() == 0 {
            let _ = writeln!(
                out,
                "Staff corrected none: the fit can only reproduce the rules' own verdicts."
            );
        }
        if self.train < self.all_fitted {
            let _ = writeln!(
                out,
                "--learn fits the latest {} of the {} emails: their words add up to {} MiB, the most \
                 phrase learning takes.",
                self.train,
                self.all_fitted,
                LEARN_TEXT_BUDGET >> 20
            );
        }
        if self.args.learn.is_some() {
            let full = self.emails.iter().filter(|e| e.full_text).count();
            let _ = writeln!(
                out,
                "Phrases from the customers' words: {full} of {n} emails with their first 4 KB, \
                 the rest with the 300-character excerpt (stored before the words were kept)."
            );
        }
        for note in self.notes {
            let _ = writeln!(out, "Note: {note}.");
        }
        let _ = writeln!(
            out,
            "Classes {} (least urgent first), {}-fold cross-validation, seed {}\n",
            self.names.join(" < "),
            self.args.folds,
            self.args.seed
        );
    }
}

/// The rules whose weight changes most, and the thresholds.
fn write_rule_changes(
    out: &mut String,
    config: &Config,
    data: &Data,
    train: &[usize],
    fitted: &Fitted,
    show: usize,
) {
    let rules = config.rules.rules();
    let tuned: HashMap<&str, f64> = fitted
        .weights
        .iter()
        .map(|(id, w)| (id.as_str(), *w))
        .collect();
    let mut corrected = vec![0usize; rules.len()];
    for &i in train {
        if data.labels[i].corrected {
            for &(r, _) in &data.hits[i] {
                corrected[r] += 1;
            }
        }
    }
    let changes = rule_changes(
        rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                Some(RuleChange {
                    rule: r.id.clone(),
                    configured: r.weight,
                    tuned: *tuned.get(r.id.as_str())?,
                    emails: fitted.hit_rows[i],
                    corrected: corrected[i],
                })
            })
            .collect(),
    );
    let th = &config.thresholds;
    let t = &fitted.thresholds;
    let _ = writeln!(
        out,
        "\nTuned (fitted on all {} emails, L2 {}; scaled to the configured threshold gap):",
        train.len(),
        fitted.l2
    );
    let _ = writeln!(
        out,
        "  thresholds  urgent {} -> {:.2}  high {} -> {:.2}  normal {} -> {:.2}",
        th.urgent, t.urgent, th.high, t.high, th.normal, t.normal
    );
    write_change_table(out, &changes, show, "weight");
    if let Some(phrases) = fitted.phrase_weights() {
        let mut top = phrases.clone();
        top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        let list: Vec<String> = top
            .iter()
            .take(show)
            .map(|(p, w, _)| format!("{p:?} {w:+.2}"))
            .collect();
        let _ = writeln!(
            out,
            "  learned phrases: {} (the weightiest: {})",
            phrases.len(),
            list.join(", ")
        );
    }
}

/// Which emails would move priority with the tuned weights (every email of the period, fitted
/// or not), against their labels.
fn write_moves(
    out: &mut String,
    emails: &[TrainingEmail],
    data: &Data,
    tuned: &[Priority],
    show: usize,
) {
    let received: Vec<i64> = emails.iter().map(|e| e.received_at).collect();
    let labels: Vec<Priority> = data.labels.iter().map(|l| l.priority).collect();
    let moved = moves(&data.current, tuned, &labels, &received);
    let count = |t: Toward| moved.iter().filter(|m| m.toward == t).count();
    let _ = writeln!(
        out,
        "\nEmails that would move priority with the tuned weights: {} of {} \
         ({} to their label, {} away from it, {} otherwise)",
        moved.len(),
        emails.len(),
        count(Toward::Label),
        count(Toward::Away),
        count(Toward::Other)
    );
    let _ = writeln!(
        out,
        "(label: staff's priority where they corrected it, else the verdict they left)"
    );
    if data.stale > 0 {
        let _ = writeln!(
            out,
            "({} emails' stored verdict differs from what the configured rules give their hits now: \
             the rules or weights changed since; moves start from the configured rules)",
            data.stale
        );
    }
    write_move_lines(out, &moved, emails, show, 6, |m| {
        let label = &data.labels[m.email];
        (
            m.from.as_str().to_string(),
            m.to.as_str().to_string(),
            label.corrected.then(|| label.priority.as_str().to_string()),
        )
    });
}

/// A line for each of the first `show` moves — the ticket, the label before and after (`name`
/// gives them, and staff's label where they corrected the email), what staff said, the
/// subject — then how many more there are. Labels are padded to `width`.
pub fn write_move_lines<T>(
    out: &mut String,
    moved: &[Move<T>],
    emails: &[TrainingEmail],
    show: usize,
    width: usize,
    name: impl Fn(&Move<T>) -> (String, String, Option<String>),
) {
    for m in moved.iter().take(show) {
        let e = &emails[m.email];
        let (from, to, staff) = name(m);
        let said = staff.map_or_else(|| "left as it was".to_string(), |s| format!("staff: {s}"));
        let _ = writeln!(
            out,
            "  {:<8} {from:>width$} -> {to:<width$}  {said:<18}  {}",
            e.tag.as_deref().unwrap_or("-"),
            crate::wording::cell(&e.subject, 60)
        );
    }
    if moved.len() > show {
        let _ = writeln!(
            out,
            "  ... and {} more (--show N lists more)",
            moved.len() - show
        );
    }
}

/// Write what `--out` and `--learn` ask for, or say that nothing was written and how to use
/// the weights.
fn write_files(
    out: &mut String,
    args: &StoreArgs,
    header: &Header<'_>,
    fitted: &Fitted,
    (tuned_f1, configured_f1): &(f64, f64),
) -> Result<()> {
    let Some(path) = &args.out else {
        let _ = writeln!(
            out,
            "\nNothing written. To use these weights: --out FILE writes them, then `weights = \"FILE\"` \
             under [scoring], `triaged check`, and a reload (SIGHUP)."
        );
        return Ok(());
    };
    let from = header.from();
    let figures = Figures {
        from: &from,
        rows: header.train,
        order: header.names,
        tuned_macro_f1: *tuned_f1,
        shipped_macro_f1: *configured_f1,
        shipped_name: "the configured ones",
    };
    priority::write_weights_file(path, &figures, &fitted.thresholds, &fitted.weights)?;
    let _ = writeln!(
        out,
        "\nWrote {} ({} rule weights and the thresholds). The running rules are unchanged: \
         include it with `weights = \"{}\"` under [scoring], run `triaged check`, then reload.",
        path.display(),
        fitted.weights.len(),
        path.display()
    );
    if let (Some(file), Some(phrases)) = (&args.learn, fitted.phrase_weights()) {
        priority::write_learned_file(file, &from, header.train, Some(path), &phrases)?;
        let _ = writeln!(
            out,
            "Wrote {} ({} phrases): a rules file, for the rules directory beside the weights.",
            file.display(),
            phrases.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
mod tone;
