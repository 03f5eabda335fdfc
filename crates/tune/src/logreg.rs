//! L2-regularised logistic regression: binary, multinomial (softmax) and ordinal (cumulative
//! logit, "proportional odds").
//!
//! Every fitter minimises the same shape of objective,
//!
//! ```text
//! ( Σ_i s_i · (−log p(y_i | x_i)) + λ/2 · ‖w‖² ) / Σ_i s_i
//! ```
//!
//! where `s_i` is the sample weight (times the class weight when balancing) and λ is
//! [`FitOptions::l2`]. Dividing by `Σ s_i` changes nothing about the minimiser; it only makes the
//! stopping tolerance mean the same thing for 300 rows and for 30 000. λ = 1/C in scikit-learn's
//! terms, so the default λ = 1 matches its default C = 1. Biases and cut points are not penalised:
//! shrinking them towards 0 would bias the predicted class frequencies.
//!
//! All three are convex in their parameters (the ordinal one too, because its cut points are
//! parametrised linearly: first cut plus gaps, each gap bounded below by [`MIN_CUT_GAP`]), so the
//! L-BFGS minimiser (the private `lbfgs` module) finds the global optimum from a fixed start:
//! results are deterministic and independent of initialisation.

use anyhow::{Result, bail, ensure};

use super::lbfgs;
use super::sparse::{Matrix, SparseVec};

/// How examples of each class count in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassWeight {
    /// Every example counts once (times its sample weight).
    #[default]
    Uniform,
    /// Class `c` counts `n / (classes_present · n_c)`, as scikit-learn's `"balanced"`: a rare
    /// class (urgent mail) then weighs as much in total as a common one.
    Balanced,
}

/// Closed interval a weight must stay in; infinities for "no limit".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub lower: f64,
    pub upper: f64,
}

impl Bound {
    pub const FREE: Bound = Bound {
        lower: f64::NEG_INFINITY,
        upper: f64::INFINITY,
    };
    /// For a rule that must only ever raise the score.
    pub const NON_NEGATIVE: Bound = Bound {
        lower: 0.0,
        upper: f64::INFINITY,
    };
    /// For a rule that must only ever lower the score.
    pub const NON_POSITIVE: Bound = Bound {
        lower: f64::NEG_INFINITY,
        upper: 0.0,
    };
}

/// Options shared by the three fitters. `Default` is a sensible starting point.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// L2 penalty λ on the weights (not on biases or cut points); 0 disables it, which is only
    /// safe when the classes overlap (separable data would push weights to infinity).
    pub l2: f64,
    pub class_weight: ClassWeight,
    /// One non-negative weight per row, multiplied with the class weight; `None` = all 1.
    pub sample_weight: Option<Vec<f64>>,
    /// One interval per feature (binary and ordinal models only): e.g. keep a rule's weight
    /// ≥ 0 so tuning can never turn "outage" into a reason for lower priority.
    pub bounds: Option<Vec<Bound>>,
    pub max_iter: usize,
    /// Stop when no coordinate of the (projected) gradient of the mean loss exceeds this.
    pub tol: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            class_weight: ClassWeight::Uniform,
            sample_weight: None,
            bounds: None,
            max_iter: 1000,
            tol: 1e-6,
        }
    }
}

/// How the optimisation went; a caller may warn when `converged` is false.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitInfo {
    pub iterations: usize,
    pub converged: bool,
    /// Final value of the normalised objective (mean penalised log-loss).
    pub objective: f64,
}

/// Smallest allowed distance between consecutive ordinal cut points. Keeps them strictly
/// increasing; a gap only shrinks to this when the class between the two cuts has no examples.
pub const MIN_CUT_GAP: f64 = 1e-6;

/// `P(y = 1 | x) = σ(w·x + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryModel {
    pub weights: Vec<f64>,
    pub bias: f64,
    pub info: FitInfo,
}

impl BinaryModel {
    /// The log-odds `w·x + bias`.
    pub fn decision(&self, x: &SparseVec) -> f64 {
        x.dot(&self.weights) + self.bias
    }

    pub fn predict_proba(&self, x: &SparseVec) -> f64 {
        sigmoid(self.decision(x))
    }

    pub fn predict(&self, x: &SparseVec) -> bool {
        self.decision(x) > 0.0
    }
}

/// `P(y = c | x) ∝ exp(w_c·x + b_c)`. Biases are centred to sum to zero (softmax is unchanged
/// by a common shift, so this only makes the numbers reproducible and readable).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiModel {
    /// `weights[c][j]`: class `c`, feature `j`.
    pub weights: Vec<Vec<f64>>,
    pub biases: Vec<f64>,
    pub info: FitInfo,
}

impl MultiModel {
    pub fn n_classes(&self) -> usize {
        self.biases.len()
    }

    /// Per-class scores `w_c·x + b_c`.
    pub fn scores(&self, x: &SparseVec) -> Vec<f64> {
        self.weights
            .iter()
            .zip(&self.biases)
            .map(|(w, b)| x.dot(w) + b)
            .collect()
    }

    pub fn predict_proba(&self, x: &SparseVec) -> Vec<f64> {
        let mut z = self.scores(x);
        softmax_in_place(&mut z);
        z
    }

    /// The most probable class; the lowest index wins a tie.
    pub fn predict(&self, x: &SparseVec) -> usize {
        argmax(&self.scores(x))
    }

    pub fn predict_all(&self, x: &Matrix) -> Vec<usize> {
        x.rows().iter().map(|r| self.predict(r)).collect()
    }
}

/// Ordered classes `0 < 1 < … < k−1` with `P(y ≥ j | x) = σ(w·x − cuts[j−1])`.
///
/// This is the rule engine's shape: `w·x` is the sum of the weights of the rules that fired and
/// `cuts` are the thresholds, lowest first. The scale is log-odds; multiplying weights and cuts
/// by the same positive factor (to get round numbers) leaves every prediction unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdinalModel {
    pub weights: Vec<f64>,
    /// Strictly increasing, `k − 1` of them.
    pub cuts: Vec<f64>,
    pub info: FitInfo,
}

impl OrdinalModel {
    pub fn n_classes(&self) -> usize {
        self.cuts.len() + 1
    }

    /// The score `w·x` (no bias: the cuts play that role).
    pub fn score(&self, x: &SparseVec) -> f64 {
        x.dot(&self.weights)
    }

    /// The number of cuts the score reaches (`score >= cut`), exactly as thresholds map a rule
    /// score to a priority. Equivalently the highest `j` with `P(y ≥ j) ≥ ½`. (This can differ
    /// from the single most probable class when a middle class is narrow; the threshold reading
    /// is the one the rules can reproduce.)
    pub fn predict(&self, x: &SparseVec) -> usize {
        let s = self.score(x);
        self.cuts.iter().filter(|&&c| s >= c).count()
    }

    pub fn predict_all(&self, x: &Matrix) -> Vec<usize> {
        x.rows().iter().map(|r| self.predict(r)).collect()
    }

    /// Probability of each class, `k` values summing to 1.
    pub fn predict_proba(&self, x: &SparseVec) -> Vec<f64> {
        let s = self.score(x);
        let at_least: Vec<f64> = self.cuts.iter().map(|c| sigmoid(s - c)).collect();
        let k = self.n_classes();
        (0..k)
            .map(|j| {
                let upper = if j == 0 { 1.0 } else { at_least[j - 1] };
                let lower = if j + 1 == k { 0.0 } else { at_least[j] };
                (upper - lower).max(0.0)
            })
            .collect()
    }
}

/// Fits `P(y | x) = σ(w·x + b)`.
pub fn fit_binary(x: &Matrix, y: &[bool], opts: &FitOptions) -> Result<BinaryModel> {
    let labels: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
    let s = sample_weights(x, &labels, 2, opts, &[0, 1])?;
    let nf = x.n_features();
    let (lower, upper) = bounds(opts, nf, 1)?;
    let total: f64 = s.iter().sum();
    let positive: f64 = labels.iter().zip(&s).map(|(&l, w)| l as f64 * w).sum();
    let mut start = vec![0.0; nf + 1];
    start[nf] = logit(positive / total);
    let objective = BinaryObjective {
        x,
        y,
        s: &s,
        l2: opts.l2,
        inv_total: 1.0 / total,
    };
    let out = lbfgs::minimize(
        |p, g| objective.eval(p, g),
        start,
        &lower,
        &upper,
        &solver_options(opts),
    );
    let info = info(&out);
    check_finite(&out.x, "weights")?;
    let weights = out.x[..nf].to_vec();
    let bias = out.x[nf];
    Ok(BinaryModel {
        weights,
        bias,
        info,
    })
}

/// Fits a softmax model over `k` classes (every class needs at least one example: an absent
/// class's bias would run off to −∞).
pub fn fit_multinomial(x: &Matrix, y: &[usize], k: usize, opts: &FitOptions) -> Result<MultiModel> {
    ensure!(
        opts.bounds.is_none(),
        "bounds are not supported for the multinomial model: its weights are only defined up to a \
         common shift per feature, so a sign constraint has no fixed meaning"
    );
    let every_class: Vec<usize> = (0..k).collect();
    let s = sample_weights(x, y, k, opts, &every_class)?;
    let nf = x.n_features();
    let total: f64 = s.iter().sum();
    let mut start = vec![0.0; k * nf + k];
    let mut class_total = vec![0.0; k];
    for (&c, w) in y.iter().zip(&s) {
        class_total[c] += w;
    }
    for c in 0..k {
        start[k * nf + c] = (class_total[c] / total).max(1e-12).ln();
    }
    let objective = ClassObjective {
        x,
        y,
        k,
        s: &s,
        l2: opts.l2,
        inv_total: 1.0 / total,
    };
    let n = start.len();
    let out = lbfgs::minimize(
        |p, g| objective.multinomial(p, g),
        start,
        &vec![f64::NEG_INFINITY; n],
        &vec![f64::INFINITY; n],
        &solver_options(opts),
    );
    let info = info(&out);
    check_finite(&out.x, "weights")?;
    let weights: Vec<Vec<f64>> = (0..k)
        .map(|c| out.x[c * nf..(c + 1) * nf].to_vec())
        .collect();
    let mut biases = out.x[k * nf..].to_vec();
    let mean = biases.iter().sum::<f64>() / k as f64;
    for b in &mut biases {
        *b -= mean;
    }
    Ok(MultiModel {
        weights,
        biases,
        info,
    })
}

/// Fits the cumulative-logit model for ordered classes `0..k`. The lowest and highest classes
/// need examples (otherwise the outer cut has no finite optimum); a middle class may be empty,
/// in which case its two cuts meet at [`MIN_CUT_GAP`].
pub fn fit_ordinal(x: &Matrix, y: &[usize], k: usize, opts: &FitOptions) -> Result<OrdinalModel> {
    let s = sample_weights(x, y, k, opts, &[0, k.saturating_sub(1)])?;
    let nf = x.n_features();
    let (mut lower, mut upper) = bounds(opts, nf, k - 1)?;
    // Parameters: weights, first cut (free), then k − 2 gaps bounded below.
    for i in nf + 1..nf + k - 1 {
        lower[i] = MIN_CUT_GAP;
        upper[i] = f64::INFINITY;
    }
    let total: f64 = s.iter().sum();
    let mut class_total = vec![0.0; k];
    for (&c, w) in y.iter().zip(&s) {
        class_total[c] += w;
    }
    // Start from the cuts that reproduce the class frequencies with all weights zero:
    // σ(−θ_j) = P(y ≥ j), i.e. θ_j = logit(P(y < j)).
    let mut below = 0.0;
    let mut cuts0 = Vec::with_capacity(k - 1);
    for c in class_total.iter().take(k - 1) {
        below += c;
        cuts0.push(logit(below / total));
    }
    let mut start = vec![0.0; nf + k - 1];
    start[nf] = cuts0[0];
    for m in 1..k - 1 {
        start[nf + m] = (cuts0[m] - cuts0[m - 1]).max(MIN_CUT_GAP);
    }
    let objective = ClassObjective {
        x,
        y,
        k,
        s: &s,
        l2: opts.l2,
        inv_total: 1.0 / total,
    };
    let out = lbfgs::minimize(
        |p, g| objective.ordinal(p, g),
        start,
        &lower,
        &upper,
        &solver_options(opts),
    );
    let info = info(&out);
    check_finite(&out.x, "parameters")?;
    let weights = out.x[..nf].to_vec();
    let cuts = cuts_from_params(&out.x[nf..]);
    Ok(OrdinalModel {
        weights,
        cuts,
        info,
    })
}

fn solver_options(opts: &FitOptions) -> lbfgs::Options {
    lbfgs::Options {
        max_iter: opts.max_iter,
        gtol: opts.tol,
        // Relative decrease below which another iteration is not worth a pass over the data;
        // far below any difference a reported metric could show.
        ftol: 1e-12,
        memory: 10,
    }
}

fn info(out: &lbfgs::Outcome) -> FitInfo {
    FitInfo {
        iterations: out.iterations,
        converged: out.converged,
        objective: out.value,
    }
}

fn check_finite(values: &[f64], what: &str) -> Result<()> {
    if values.iter().any(|v| !v.is_finite()) {
        bail!("the fit produced non-finite {what}; is l2 zero on separable data?");
    }
    Ok(())
}

/// Validates labels and options and returns each row's effective weight (sample × class).
fn sample_weights(
    x: &Matrix,
    y: &[usize],
    k: usize,
    opts: &FitOptions,
    required: &[usize],
) -> Result<Vec<f64>> {
    ensure!(k >= 2, "need at least two classes, got {k}");
    ensure!(
        x.n_rows() == y.len(),
        "{} rows but {} labels",
        x.n_rows(),
        y.len()
    );
    ensure!(
        opts.l2.is_finite() && opts.l2 >= 0.0,
        "l2 must be a finite number >= 0, got {}",
        opts.l2
    );
    ensure!(opts.tol >= 0.0, "tol must be >= 0, got {}", opts.tol);
    if let Some(i) = y.iter().position(|&c| c >= k) {
        bail!("row {i} has label {} but there are only {k} classes", y[i]);
    }
    let mut s = match &opts.sample_weight {
        Some(w) => {
            ensure!(
                w.len() == y.len(),
                "{} sample weights for {} rows",
                w.len(),
                y.len()
            );
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                bail!(
                    "sample weight {i} is {}; weights must be finite and >= 0",
                    w[i]
                );
            }
            w.clone()
        }
        None => vec![1.0; y.len()],
    };
    if opts.class_weight == ClassWeight::Balanced {
        let mut count = vec![0usize; k];
        for &c in y {
            count[c] += 1;
        }
        let present = count.iter().filter(|&&n| n > 0).count();
        for (w, &c) in s.iter_mut().zip(y) {
            *w *= y.len() as f64 / (present * count[c]) as f64;
        }
    }
    let mut class_total = vec![0.0; k];
    for (&c, w) in y.iter().zip(&s) {
        class_total[c] += w;
    }
    for &c in required {
        ensure!(
            class_total[c] > 0.0,
            "class {c} has no training examples (or only zero-weight ones); \
             the model cannot place it and its parameter would diverge"
        );
    }
    Ok(s)
}

/// Lower and upper bounds for `nf` weights followed by `extra` free parameters.
fn bounds(opts: &FitOptions, nf: usize, extra: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut lower = vec![f64::NEG_INFINITY; nf + extra];
    let mut upper = vec![f64::INFINITY; nf + extra];
    if let Some(b) = &opts.bounds {
        ensure!(
            b.len() == nf,
            "{} bounds for {nf} features; give one per feature",
            b.len()
        );
        for (j, bound) in b.iter().enumerate() {
            ensure!(
                bound.lower <= bound.upper,
                "feature {j}: lower bound {} is above upper bound {}",
                bound.lower,
                bound.upper
            );
            lower[j] = bound.lower;
            upper[j] = bound.upper;
        }
    }
    Ok((lower, upper))
}

/// Cut points from `[first cut, gap, gap, …]`.
fn cuts_from_params(p: &[f64]) -> Vec<f64> {
    let mut cuts = Vec::with_capacity(p.len());
    let mut acc = 0.0;
    for (m, v) in p.iter().enumerate() {
        acc = if m == 0 { *v } else { acc + v };
        cuts.push(acc);
    }
    cuts
}

struct BinaryObjective<'a> {
    x: &'a Matrix,
    y: &'a [bool],
    s: &'a [f64],
    l2: f64,
    inv_total: f64,
}

impl BinaryObjective<'_> {
    /// Parameters `[w…, bias]`.
    fn eval(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let nf = self.x.n_features();
        let (w, b) = (&p[..nf], p[nf]);
        grad.fill(0.0);
        let mut loss = 0.0;
        for ((row, &yi), &si) in self.x.rows().iter().zip(self.y).zip(self.s) {
            if si == 0.0 {
                continue;
            }
            let z = row.dot(w) + b;
            let t = if yi { 1.0 } else { 0.0 };
            loss += si * (softplus(z) - t * z);
            let r = si * (sigmoid(z) - t);
            row.add_scaled_to(r, &mut grad[..nf]);
            grad[nf] += r;
        }
        loss += penalty(self.l2, w, &mut grad[..nf]);
        scale(grad, self.inv_total);
        loss * self.inv_total
    }
}

/// Rows labelled with one of `k` classes, their sample weights and the L2 strength: the data
/// of both the multinomial and the ordinal objective.
struct ClassObjective<'a> {
    x: &'a Matrix,
    y: &'a [usize],
    k: usize,
    s: &'a [f64],
    l2: f64,
    inv_total: f64,
}

impl ClassObjective<'_> {
    /// Multinomial loss. Parameters `[w_0…, w_1…, …, w_{k−1}…, b_0, …, b_{k−1}]`.
    fn multinomial(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let (nf, k) = (self.x.n_features(), self.k);
        grad.fill(0.0);
        let mut loss = 0.0;
        let mut z = vec![0.0; k];
        for ((row, &yi), &si) in self.x.rows().iter().zip(self.y).zip(self.s) {
            if si == 0.0 {
                continue;
            }
            for (c, zc) in z.iter_mut().enumerate() {
                *zc = row.dot(&p[c * nf..(c + 1) * nf]) + p[k * nf + c];
            }
            let lse = log_sum_exp(&z);
            loss += si * (lse - z[yi]);
            for (c, &zc) in z.iter().enumerate() {
                let target = if c == yi { 1.0 } else { 0.0 };
                let r = si * ((zc - lse).exp() - target);
                row.add_scaled_to(r, &mut grad[c * nf..(c + 1) * nf]);
                grad[k * nf + c] += r;
            }
        }
        let (w, gw) = (&p[..k * nf], &mut grad[..k * nf]);
        loss += penalty(self.l2, w, gw);
        scale(grad, self.inv_total);
        loss * self.inv_total
    }

    /// Ordinal (cumulative logit) loss. Parameters `[w…, θ_1, θ_2 − θ_1, …, θ_{k−1} − θ_{k−2}]`.
    ///
    /// For a middle class `j` with `a = η − θ_j`, `b = η − θ_{j+1}` (so `a − b` is the gap):
    /// `P = σ(a) − σ(b) = σ(a) · σ(−b) · (1 − e^{−(a−b)})`, whose log is computed without
    /// cancellation, and `∂ log P/∂η = 1 − σ(a) − σ(b)`.
    fn ordinal(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let (nf, k) = (self.x.n_features(), self.k);
        let w = &p[..nf];
        let cuts = cuts_from_params(&p[nf..]);
        grad.fill(0.0);
        // ∂(Σ s·log P)/∂θ_j, accumulated over rows, mapped to the gap parametrisation below.
        let mut d_cut = vec![0.0; k - 1];
        let mut loss = 0.0;
        for ((row, &yi), &si) in self.x.rows().iter().zip(self.y).zip(self.s) {
            if si == 0.0 {
                continue;
            }
            let eta = row.dot(w);
            let (log_p, d_eta) = if yi == 0 {
                let a = cuts[0] - eta;
                d_cut[0] += si * sigmoid(-a);
                (log_sigmoid(a), -sigmoid(-a))
            } else if yi == k - 1 {
                let a = eta - cuts[k - 2];
                d_cut[k - 2] -= si * sigmoid(-a);
                (log_sigmoid(a), sigmoid(-a))
            } else {
                let a = eta - cuts[yi - 1];
                let b = eta - cuts[yi];
                let gap = p[nf + yi];
                let inv = 1.0 / gap.exp_m1();
                d_cut[yi - 1] += si * (-sigmoid(-a) - inv);
                d_cut[yi] += si * (sigmoid(b) + inv);
                let log_p = log_sigmoid(a) + log_sigmoid(-b) + (-(-gap).exp_m1()).ln();
                (log_p, 1.0 - sigmoid(a) - sigmoid(b))
            };
            loss -= si * log_p;
            row.add_scaled_to(-si * d_eta, &mut grad[..nf]);
        }
        // θ_m = p[nf] + Σ_{i=1..m} p[nf+i], so ∂/∂p[nf+i] = Σ_{m ≥ i} ∂/∂θ_m (and i = 0 is all).
        let mut suffix = 0.0;
        for m in (0..k - 1).rev() {
            suffix += d_cut[m];
            grad[nf + m] = -suffix;
        }
        loss += penalty(self.l2, w, &mut grad[..nf]);
        scale(grad, self.inv_total);
        loss * self.inv_total
    }
}

/// Adds λ·w to the gradient and returns λ/2·‖w‖².
fn penalty(l2: f64, w: &[f64], grad: &mut [f64]) -> f64 {
    if l2 == 0.0 {
        return 0.0;
    }
    let mut sq = 0.0;
    for (g, &v) in grad.iter_mut().zip(w) {
        *g += l2 * v;
        sq += v * v;
    }
    0.5 * l2 * sq
}

fn scale(v: &mut [f64], factor: f64) {
    for x in v {
        *x *= factor;
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn log_sigmoid(z: f64) -> f64 {
    -softplus(-z)
}

/// `log(p / (1 − p))`, clamped so an extreme frequency gives a large finite start.
fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

fn log_sum_exp(z: &[f64]) -> f64 {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

fn softmax_in_place(z: &mut [f64]) {
    let lse = log_sum_exp(z);
    for v in z {
        *v = (*v - lse).exp();
    }
}

fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in z.iter().enumerate() {
        if *v > z[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests;
