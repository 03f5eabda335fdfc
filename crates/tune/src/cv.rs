//! Cross-validation: every reported figure comes from predictions on rows the model was not
//! fitted to.
//!
//! Regularisation strength: [`select_l2`] picks λ from a grid by *inner* cross-validation on
//! the training rows of each outer fold (nested CV), so choosing λ never looks at the rows the
//! outer fold scores. It is cheap for the ordinal rule model (a few dozen features, fits in
//! milliseconds) and is what we recommend there. For the TF-IDF yardstick a nested search
//! multiplies a multi-second fit by grid × inner folds, so use the fixed default λ = 1
//! (scikit-learn's C = 1), which is the usual baseline setting; the yardstick only needs to be a
//! fair, not an optimal, comparison.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};

use super::rng::SplitMix64;

/// The default λ grid for [`select_l2`]: 10⁻² … 10², one point per decade.
pub const L2_GRID: [f64; 5] = [0.01, 0.1, 1.0, 10.0, 100.0];

/// Assigns each row a fold `0..k` so every class is spread as evenly as possible over the
/// folds: within each class the rows are shuffled with `seed` and dealt round-robin, the deal
/// continuing across classes so fold sizes differ by at most one.
pub fn stratified_folds(labels: &[usize], k: usize, seed: u64) -> Result<Vec<usize>> {
    ensure!(k >= 2, "need at least 2 folds, got {k}");
    ensure!(
        labels.len() >= k,
        "{} rows cannot fill {k} folds",
        labels.len()
    );
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in labels.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let mut rng = SplitMix64::new(seed);
    let mut folds = vec![0; labels.len()];
    let mut next = 0;
    for rows in by_class.values_mut() {
        rng.shuffle(rows);
        for &i in rows.iter() {
            folds[i] = next % k;
            next += 1;
        }
    }
    Ok(folds)
}

/// Out-of-fold predictions: for each distinct fold id (in increasing order), `train` sees the
/// indices of all rows outside the fold and `predict` the indices of the rows inside it; the
/// returned vector holds, for every row, the prediction made by the model that never saw it.
///
/// `predict` must return one value per index it is given, in that order.
pub fn out_of_fold<M, T>(
    folds: &[usize],
    mut train: impl FnMut(&[usize]) -> Result<M>,
    mut predict: impl FnMut(&M, &[usize]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &f) in folds.iter().enumerate() {
        members.entry(f).or_default().push(i);
    }
    ensure!(
        members.len() >= 2,
        "cross-validation needs at least 2 folds, got {}",
        members.len()
    );
    let mut out: Vec<Option<T>> = (0..folds.len()).map(|_| None).collect();
    for (&fold, test) in &members {
        let train_rows: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] != fold).collect();
        let model = train(&train_rows).with_context(|| format!("Training without fold {fold}"))?;
        let predictions =
            predict(&model, test).with_context(|| format!("Predicting fold {fold}"))?;
        if predictions.len() != test.len() {
            bail!(
                "fold {fold}: {} predictions for {} rows",
                predictions.len(),
                test.len()
            );
        }
        for (&i, p) in test.iter().zip(predictions) {
            out[i] = Some(p);
        }
    }
    // Every row belongs to exactly one fold, so every slot was filled above.
    out.into_iter()
        .collect::<Option<Vec<T>>>()
        .context("a row received no out-of-fold prediction")
}

/// What [`select_l2`] chose and why.
#[derive(Debug, Clone, PartialEq)]
pub struct L2Choice {
    pub l2: f64,
    /// `(λ, mean inner-fold score)` for every grid point, in grid order.
    pub scores: Vec<(f64, f64)>,
}

/// Picks λ from `grid` by `inner_k`-fold stratified CV over `rows` only (normally the training
/// rows of an outer fold). `train(λ, rows)` fits, `score(model, rows)` returns a
/// higher-is-better figure (e.g. accuracy or negative log-loss) on held-out rows. The λ with
/// the best mean score wins; on a tie (within 1e-12) the larger λ, the simpler model.
pub fn select_l2<M>(
    grid: &[f64],
    labels: &[usize],
    rows: &[usize],
    inner_k: usize,
    seed: u64,
    mut train: impl FnMut(f64, &[usize]) -> Result<M>,
    mut score: impl FnMut(&M, &[usize]) -> Result<f64>,
) -> Result<L2Choice> {
    ensure!(!grid.is_empty(), "the l2 grid is empty");
    let mut row_labels = Vec::with_capacity(rows.len());
    for &r in rows {
        match labels.get(r) {
            Some(&c) => row_labels.push(c),
            None => bail!("row {r} has no label ({} labels)", labels.len()),
        }
    }
    let folds = stratified_folds(&row_labels, inner_k, seed)?;
    let mut scores = Vec::with_capacity(grid.len());
    for &l2 in grid {
        let mut total = 0.0;
        for fold in 0..inner_k {
            let (mut fit_rows, mut held) = (Vec::new(), Vec::new());
            for (&r, &f) in rows.iter().zip(&folds) {
                if f == fold {
                    held.push(r);
                } else {
                    fit_rows.push(r);
                }
            }
            let model = train(l2, &fit_rows).with_context(|| format!("Fitting l2 = {l2}"))?;
            total += score(&model, &held)?;
        }
        scores.push((l2, total / inner_k as f64));
    }
    let mut best = scores[0];
    for &(l2, s) in &scores[1..] {
        if s > best.1 + 1e-12 || ((s - best.1).abs() <= 1e-12 && l2 > best.0) {
            best = (l2, s);
        }
    }
    Ok(L2Choice { l2: best.0, scores })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;
    use crate::logreg::{FitOptions, fit_ordinal};
    use crate::sparse::{Matrix, SparseVec};

    #[test]
    fn stratified_folds_balance_classes_and_sizes() {
        let labels: Vec<usize> = (0..103)
            .map(|i| if i % 10 == 0 { 2 } else { i % 2 })
            .collect();
        let folds = stratified_folds(&labels, 5, 42).unwrap();
        assert_eq!(folds, stratified_folds(&labels, 5, 42).unwrap(), "seeded");
        assert_ne!(folds, stratified_folds(&labels, 5, 43).unwrap());
        for class in 0..3 {
            let mut per_fold = [0usize; 5];
            for (&c, &f) in labels.iter().zip(&folds) {
                if c == class {
                    per_fold[f] += 1;
                }
            }
            let (lo, hi) = (per_fold.iter().min(), per_fold.iter().max());
            assert!(
                hi.unwrap() - lo.unwrap() <= 1,
                "class {class}: {per_fold:?}"
            );
        }
        let mut sizes = [0usize; 5];
        for &f in &folds {
            sizes[f] += 1;
        }
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        assert!(stratified_folds(&labels, 1, 0).is_err());
        assert!(stratified_folds(&[0, 1], 3, 0).is_err());
    }

    #[test]
    fn out_of_fold_never_predicts_a_row_with_a_model_that_saw_it() {
        let folds = [0, 1, 2, 0, 1, 2, 0, 1];
        let log = RefCell::new(Vec::new());
        // The "model" is the set of rows it was trained on; predicting reports overlap.
        let out = out_of_fold(
            &folds,
            |train| {
                log.borrow_mut().push(train.len());
                Ok(train.iter().copied().collect::<BTreeSet<usize>>())
            },
            |seen, test| Ok(test.iter().map(|i| (seen.contains(i), *i)).collect()),
        )
        .unwrap();
        assert_eq!(log.into_inner(), vec![5, 5, 6]);
        for (row, (leaked, i)) in out.iter().enumerate() {
            assert!(!leaked, "row {row} predicted by a model trained on it");
            assert_eq!(*i, row, "predictions land on their own rows");
        }
    }

    #[test]
    fn a_memoriser_scores_perfectly_in_sample_and_at_chance_out_of_fold() {
        // Random labels: nothing to learn. A model that memorises its training rows is 100 %
        // "accurate" in-sample; out-of-fold it must fall to chance, which is what keeps the
        // reported metrics honest.
        let mut rng = SplitMix64::new(9);
        let labels: Vec<usize> = (0..400).map(|_| rng.below(2)).collect();
        let folds = stratified_folds(&labels, 5, 1).unwrap();
        let memorise = |rows: &[usize]| -> Result<BTreeMap<usize, usize>> {
            Ok(rows.iter().map(|&r| (r, labels[r])).collect())
        };
        let recall = |m: &BTreeMap<usize, usize>, rows: &[usize]| -> Result<Vec<usize>> {
            Ok(rows
                .iter()
                .map(|r| m.get(r).copied().unwrap_or(0))
                .collect())
        };
        let accuracy = |pred: &[usize]| {
            pred.iter().zip(&labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64
        };
        let all: Vec<usize> = (0..400).collect();
        let in_sample = recall(&memorise(&all).unwrap(), &all).unwrap();
        assert_eq!(accuracy(&in_sample), 1.0);
        let oof = out_of_fold(&folds, memorise, recall).unwrap();
        assert!((accuracy(&oof) - 0.5).abs() < 0.1, "{}", accuracy(&oof));
    }

    #[test]
    fn out_of_fold_reports_bad_folds_and_short_predictions() {
        let train = |_: &[usize]| Ok(());
        let err = out_of_fold(&[0, 0], train, |_, t| Ok(vec![0; t.len()])).unwrap_err();
        assert!(err.to_string().contains("at least 2 folds"));
        let err = out_of_fold(&[0, 1], train, |_, _| Ok(Vec::<usize>::new())).unwrap_err();
        assert!(
            err.to_string().contains("0 predictions for 1 rows"),
            "{err}"
        );
        let err = out_of_fold(
            &[0, 1],
            |_| -> Result<()> { bail!("boom") },
            |_, t| Ok(vec![0; t.len()]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("Training without fold 0: boom"),
            "{err:#}"
        );
    }

    #[test]
    fn select_l2_prefers_weak_penalty_on_clean_signal_and_strong_on_noise() {
        // One informative feature: heavy shrinkage hurts log-likelihood. With pure-noise
        // features and random labels, the most regularised model generalises best.
        let mut rng = SplitMix64::new(3);
        let n = 600;
        let signal: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let clean_y: Vec<usize> = signal
            .iter()
            .map(|&s| usize::from(4.0 * s + rng.logistic() > 0.0))
            .collect();
        let clean = Matrix::new(
            signal
                .iter()
                .map(|&s| SparseVec::from_dense(&[s]))
                .collect(),
            1,
        )
        .unwrap();
        let noise_rows: Vec<SparseVec> = (0..n)
            .map(|_| SparseVec::from_dense(&(0..20).map(|_| rng.normal()).collect::<Vec<_>>()))
            .collect();
        let noise = Matrix::new(noise_rows, 20).unwrap();
        let noise_y: Vec<usize> = (0..n).map(|_| rng.below(2)).collect();
        let rows: Vec<usize> = (0..n).collect();

        let mut chosen = Vec::new();
        for (x, y) in [(&clean, &clean_y), (&noise, &noise_y)] {
            let choice = select_l2(
                &L2_GRID,
                y,
                &rows,
                3,
                5,
                |l2, r| {
                    let opts = FitOptions {
                        l2,
                        ..FitOptions::default()
                    };
                    let labels: Vec<usize> = r.iter().map(|&i| y[i]).collect();
                    fit_ordinal(&x.select(r)?, &labels, 2, &opts)
                },
                |m, r| {
                    // Mean log-likelihood of the held-out labels.
                    Ok(r.iter()
                        .map(|&i| m.predict_proba(&x.rows()[i])[y[i]].max(1e-300).ln())
                        .sum::<f64>()
                        / r.len() as f64)
                },
            )
            .unwrap();
            assert_eq!(choice.scores.len(), L2_GRID.len());
            chosen.push(choice);
        }
        assert!(chosen[0].l2 <= 1.0, "clean signal: {:?}", chosen[0]);
        assert_eq!(chosen[1].l2, 100.0, "noise: {:?}", chosen[1]);
    }
}
