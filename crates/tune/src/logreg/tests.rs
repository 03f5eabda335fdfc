use super::*;
use crate::rng::SplitMix64;

fn dense_rows(rng: &mut SplitMix64, n: usize, nf: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| (0..nf).map(|_| rng.normal()).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn precise() -> FitOptions {
    FitOptions {
        l2: 1e-3,
        tol: 1e-9,
        ..FitOptions::default()
    }
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (±{tol}); all: {got:?}"
        );
    }
}

/// Central differences against the analytic gradient, coordinate by coordinate.
fn check_gradient(f: impl Fn(&[f64], &mut [f64]) -> f64, p: &[f64]) {
    let mut g = vec![0.0; p.len()];
    f(p, &mut g);
    let mut scratch = vec![0.0; p.len()];
    let h = 1e-6;
    for i in 0..p.len() {
        let mut plus = p.to_vec();
        plus[i] += h;
        let mut minus = p.to_vec();
        minus[i] -= h;
        let numeric = (f(&plus, &mut scratch) - f(&minus, &mut scratch)) / (2.0 * h);
        let err = (numeric - g[i]).abs();
        assert!(
            err <= 1e-6 * (1.0 + numeric.abs()),
            "parameter {i}: analytic {} vs numeric {numeric}",
            g[i]
        );
    }
}

/// Labels from the true model, so a correct fitter must get the weights back.
fn binary_data(n: usize, w: &[f64], bias: f64, seed: u64) -> (Matrix, Vec<bool>) {
    let mut rng = SplitMix64::new(seed);
    let rows = dense_rows(&mut rng, n, w.len());
    let y = rows
        .iter()
        .map(|r| rng.next_f64() < sigmoid(dot(r, w) + bias))
        .collect();
    (Matrix::from_dense(&rows, w.len()).unwrap(), y)
}

fn ordinal_data(n: usize, w: &[f64], cuts: &[f64], seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = SplitMix64::new(seed);
    let rows = dense_rows(&mut rng, n, w.len());
    // Latent y* = w·x + logistic noise, class = number of cuts below y*; then
    // P(y ≥ j) = P(noise > θ_j − w·x) = σ(w·x − θ_j), exactly the model.
    let y = rows
        .iter()
        .map(|r| {
            let latent = dot(r, w) + rng.logistic();
            cuts.iter().filter(|&&c| latent > c).count()
        })
        .collect();
    (Matrix::from_dense(&rows, w.len()).unwrap(), y)
}

#[test]
fn binary_recovers_known_weights() {
    let w = [1.5, -2.0, 0.5, 0.0];
    let (x, y) = binary_data(20_000, &w, -0.5, 1);
    let m = fit_binary(&x, &y, &precise()).unwrap();
    assert!(m.info.converged, "{:?}", m.info);
    assert_close(&m.weights, &w, 0.08, "weights");
    assert!((m.bias + 0.5).abs() < 0.06, "bias {}", m.bias);
}

#[test]
fn multinomial_recovers_known_weights() {
    // Per feature the true weights sum to zero over classes and so do the biases: the L2
    // penalty picks exactly that representative of the softmax's equivalent solutions.
    let w = [
        vec![1.0, -1.0, 0.5],
        vec![-0.5, 1.0, 0.0],
        vec![-0.5, 0.0, -0.5],
    ];
    let b = [0.3, 0.0, -0.3];
    let mut rng = SplitMix64::new(2);
    let rows = dense_rows(&mut rng, 20_000, 3);
    let y: Vec<usize> = rows
        .iter()
        .map(|r| {
            let mut z: Vec<f64> = (0..3).map(|c| dot(r, &w[c]) + b[c]).collect();
            softmax_in_place(&mut z);
            let u = rng.next_f64();
            if u < z[0] {
                0
            } else if u < z[0] + z[1] {
                1
            } else {
                2
            }
        })
        .collect();
    let x = Matrix::from_dense(&rows, 3).unwrap();
    let m = fit_multinomial(&x, &y, 3, &precise()).unwrap();
    assert!(m.info.converged, "{:?}", m.info);
    for (c, (got, want)) in m.weights.iter().zip(&w).enumerate() {
        assert_close(got, want, 0.08, &format!("class {c} weights"));
    }
    assert_close(&m.biases, &b, 0.06, "biases");
    let p = m.predict_proba(x.rows().first().unwrap());
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert_eq!(m.predict(&x.rows()[0]), argmax(&p));
}

#[test]
fn ordinal_recovers_known_weights_and_cuts() {
    let w = [1.0, -1.5, 0.8];
    let cuts = [-1.0, 0.5, 2.0];
    let (x, y) = ordinal_data(20_000, &w, &cuts, 3);
    let m = fit_ordinal(&x, &y, 4, &precise()).unwrap();
    assert!(m.info.converged, "{:?}", m.info);
    assert_close(&m.weights, &w, 0.08, "weights");
    assert_close(&m.cuts, &cuts, 0.08, "cuts");
    let p = m.predict_proba(&x.rows()[0]);
    assert_eq!(p.len(), 4);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn ordinal_predict_is_the_threshold_rule() {
    let m = OrdinalModel {
        weights: vec![1.0, 2.0],
        cuts: vec![1.0, 4.0, 8.0],
        info: FitInfo {
            iterations: 0,
            converged: true,
            objective: 0.0,
        },
    };
    // Scores 0, 1, 3, 4, 8, 9: exactly on a threshold counts as reaching it, like Thresholds.
    let cases = [
        (vec![0.0, 0.0], 0),
        (vec![1.0, 0.0], 1),
        (vec![1.0, 1.0], 1),
        (vec![0.0, 2.0], 2),
        (vec![0.0, 4.0], 3),
        (vec![1.0, 4.0], 3),
    ];
    for (row, want) in cases {
        assert_eq!(m.predict(&SparseVec::from_dense(&row)), want, "row {row:?}");
    }
}

#[test]
fn ordinal_with_two_classes_is_binary_logistic_regression() {
    let (x, y) = binary_data(3_000, &[0.7, -1.2], 0.4, 4);
    let labels: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
    let opts = FitOptions {
        l2: 0.5,
        tol: 1e-10,
        ..FitOptions::default()
    };
    let b = fit_binary(&x, &y, &opts).unwrap();
    let o = fit_ordinal(&x, &labels, 2, &opts).unwrap();
    assert_close(&o.weights, &b.weights, 1e-6, "weights");
    assert!(
        (o.cuts[0] + b.bias).abs() < 1e-6,
        "cut {} bias {}",
        o.cuts[0],
        b.bias
    );
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = SplitMix64::new(5);
    let rows = dense_rows(&mut rng, 40, 3);
    // A sparse column too, so the sparse paths are exercised.
    let rows: Vec<Vec<f64>> = rows
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.push(if i % 3 == 0 { 1.0 } else { 0.0 });
            r
        })
        .collect();
    let x = Matrix::from_dense(&rows, 4).unwrap();
    let s: Vec<f64> = (0..40).map(|i| 0.5 + (i % 4) as f64 * 0.5).collect();
    let yb: Vec<bool> = (0..40).map(|i| i % 3 == 1).collect();
    let y4: Vec<usize> = (0..40).map(|i| (i * 7) % 4).collect();
    let inv_total = 1.0 / s.iter().sum::<f64>();

    let bin = BinaryObjective {
        x: &x,
        y: &yb,
        s: &s,
        l2: 0.7,
        inv_total,
    };
    let p: Vec<f64> = (0..5).map(|_| rng.normal()).collect();
    check_gradient(|p, g| bin.eval(p, g), &p);

    let classes = ClassObjective {
        x: &x,
        y: &y4,
        k: 4,
        s: &s,
        l2: 0.7,
        inv_total,
    };
    let p: Vec<f64> = (0..4 * 4 + 4).map(|_| rng.normal()).collect();
    check_gradient(|p, g| classes.multinomial(p, g), &p);

    // Weights, first cut, then two positive gaps (one small, where 1/expm1 is steep).
    let mut p: Vec<f64> = (0..4).map(|_| rng.normal()).collect();
    p.extend([-0.5, 0.05, 1.3]);
    check_gradient(|p, g| classes.ordinal(p, g), &p);
}

#[test]
fn separable_data_stays_finite_thanks_to_l2() {
    let rows: Vec<Vec<f64>> = (0..200)
        .map(|i| vec![if i % 2 == 0 { 1.0 } else { -1.0 }])
        .collect();
    let x = Matrix::from_dense(&rows, 1).unwrap();
    let yb: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
    let y: Vec<usize> = yb.iter().map(|&b| usize::from(b)).collect();
    let opts = FitOptions {
        l2: 0.01,
        ..FitOptions::default()
    };
    let b = fit_binary(&x, &yb, &opts).unwrap();
    assert!(
        b.info.converged && b.weights[0].is_finite() && b.weights[0] > 1.0,
        "{b:?}"
    );
    assert!(b.weights[0] < 50.0, "{b:?}");
    let m = fit_multinomial(&x, &y, 2, &opts).unwrap();
    assert!(
        m.info.converged && m.weights[1][0] > 1.0 && m.weights[1][0] < 50.0,
        "{m:?}"
    );
    let o = fit_ordinal(&x, &y, 2, &opts).unwrap();
    assert!(
        o.info.converged && o.weights[0] > 1.0 && o.weights[0] < 50.0,
        "{o:?}"
    );
    assert!(x.rows().iter().zip(&yb).all(|(r, &t)| b.predict(r) == t));
}

#[test]
fn ordinal_with_an_empty_middle_class_keeps_cuts_increasing() {
    // Classes 0 and 2 only: the two cuts around class 1 should meet, but never cross.
    let (x, y) = binary_data(2_000, &[1.0], 0.0, 6);
    let labels: Vec<usize> = y.iter().map(|&b| if b { 2 } else { 0 }).collect();
    let m = fit_ordinal(&x, &labels, 3, &precise()).unwrap();
    assert!(m.info.converged, "{:?}", m.info);
    let gap = m.cuts[1] - m.cuts[0];
    assert!(
        (MIN_CUT_GAP * 0.999..1e-3).contains(&gap),
        "cuts {:?}",
        m.cuts
    );
    assert!(m.weights[0].is_finite() && m.cuts.iter().all(|c| c.is_finite()));
}

#[test]
fn sign_bounds_are_respected_and_leave_other_weights_fitted() {
    // Feature 1 truly lowers the odds; constrained to >= 0 it must sit exactly at 0, and the
    // rest of the model must be the optimum without that feature: the fit on column 0 alone.
    let (x, y) = binary_data(10_000, &[1.0, -1.0], 0.0, 7);
    let opts = FitOptions {
        bounds: Some(vec![Bound::FREE, Bound::NON_NEGATIVE]),
        ..precise()
    };
    let m = fit_binary(&x, &y, &opts).unwrap();
    assert!(m.info.converged, "{:?}", m.info);
    assert_eq!(m.weights[1], 0.0);
    let column0: Vec<SparseVec> = x
        .rows()
        .iter()
        .map(|r| SparseVec::from_dense(&[r.get(0)]))
        .collect();
    let alone = fit_binary(&Matrix::new(column0, 1).unwrap(), &y, &precise()).unwrap();
    assert!(
        (m.weights[0] - alone.weights[0]).abs() < 1e-6,
        "{m:?} vs {alone:?}"
    );
    assert!((m.bias - alone.bias).abs() < 1e-6);
    // The same bounds on the ordinal model.
    let labels: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
    let o = fit_ordinal(&x, &labels, 2, &opts).unwrap();
    assert_eq!(o.weights[1], 0.0);
    assert_close(
        &o.weights,
        &m.weights,
        1e-5,
        "ordinal vs binary under bounds",
    );
    // An upper bound that binds.
    let opts = FitOptions {
        bounds: Some(vec![
            Bound {
                lower: -0.25,
                upper: 0.25,
            },
            Bound::FREE,
        ]),
        ..precise()
    };
    let m = fit_binary(&x, &y, &opts).unwrap();
    assert_eq!(m.weights[0], 0.25);
    // Feature 1 still fitted (somewhat attenuated by the part of feature 0 the bound cuts off).
    assert!((m.weights[1] + 1.0).abs() < 0.25, "{m:?}");
}

#[test]
fn balanced_class_weight_centres_the_weighted_mean_prediction() {
    // With an unpenalised bias, the optimum satisfies Σ s_i (p_i − y_i) = 0: the mean predicted
    // probability equals the base rate unweighted, and ½ when classes are balanced.
    let (x, y) = binary_data(5_000, &[0.5], -3.0, 8);
    let rate = y.iter().filter(|&&b| b).count() as f64 / y.len() as f64;
    assert!(rate < 0.15, "test data should be imbalanced: {rate}");
    let plain = fit_binary(&x, &y, &precise()).unwrap();
    let mean_p = |m: &BinaryModel| -> f64 {
        x.rows().iter().map(|r| m.predict_proba(r)).sum::<f64>() / x.n_rows() as f64
    };
    assert!((mean_p(&plain) - rate).abs() < 1e-5);
    let opts = FitOptions {
        class_weight: ClassWeight::Balanced,
        ..precise()
    };
    let bal = fit_binary(&x, &y, &opts).unwrap();
    let (n_pos, n_neg) = (rate * 5_000.0, (1.0 - rate) * 5_000.0);
    let weighted: f64 = x
        .rows()
        .iter()
        .zip(&y)
        .map(|(r, &t)| bal.predict_proba(r) / if t { n_pos } else { n_neg })
        .sum::<f64>()
        / 2.0;
    assert!((weighted - 0.5).abs() < 1e-5, "{weighted}");
    assert!(
        bal.bias > plain.bias + 1.0,
        "balancing should raise the bias"
    );
}

#[test]
fn sample_weight_two_equals_a_duplicated_row() {
    let (x, y) = binary_data(300, &[1.0, 0.5], 0.2, 9);
    let mut rows = x.rows().to_vec();
    let mut labels = y.clone();
    for i in 0..50 {
        rows.push(rows[i].clone());
        labels.push(labels[i]);
    }
    let doubled = Matrix::new(rows, 2).unwrap();
    let opts = FitOptions {
        tol: 1e-10,
        ..FitOptions::default()
    };
    let a = fit_binary(&doubled, &labels, &opts).unwrap();
    let weights: Vec<f64> = (0..300).map(|i| if i < 50 { 2.0 } else { 1.0 }).collect();
    let opts = FitOptions {
        sample_weight: Some(weights),
        ..opts
    };
    let b = fit_binary(&x, &y, &opts).unwrap();
    assert_close(&a.weights, &b.weights, 1e-6, "weights");
    assert!((a.bias - b.bias).abs() < 1e-6);
}

#[test]
fn stronger_l2_shrinks_weights() {
    let (x, y) = binary_data(500, &[2.0], 0.0, 10);
    let weak = fit_binary(&x, &y, &precise()).unwrap();
    let strong = fit_binary(
        &x,
        &y,
        &FitOptions {
            l2: 100.0,
            ..precise()
        },
    )
    .unwrap();
    assert!(
        strong.weights[0].abs() < 0.5 * weak.weights[0].abs(),
        "{weak:?} {strong:?}"
    );
}

#[test]
fn fits_are_bit_for_bit_reproducible() {
    let (x, y) = ordinal_data(1_000, &[0.5, -0.5], &[-0.5, 0.5], 11);
    let a = fit_ordinal(&x, &y, 3, &FitOptions::default()).unwrap();
    let b = fit_ordinal(&x, &y, 3, &FitOptions::default()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let x = Matrix::from_dense(&[vec![1.0], vec![-1.0]], 1).unwrap();
    let opts = FitOptions::default();
    let cases: Vec<(Result<()>, &str)> = vec![
        (
            fit_binary(&x, &[true], &opts).map(drop),
            "2 rows but 1 labels",
        ),
        (
            fit_binary(&x, &[true, true], &opts).map(drop),
            "class 0 has no training examples",
        ),
        (
            fit_multinomial(&x, &[0, 3], 3, &opts).map(drop),
            "label 3 but there are only 3",
        ),
        (
            fit_multinomial(&x, &[0, 1], 3, &opts).map(drop),
            "class 2 has no training examples",
        ),
        (
            fit_ordinal(&x, &[0, 1], 1, &opts).map(drop),
            "at least two classes",
        ),
        (
            fit_multinomial(
                &x,
                &[0, 1],
                2,
                &FitOptions {
                    bounds: Some(vec![Bound::FREE]),
                    ..FitOptions::default()
                },
            )
            .map(drop),
            "bounds are not supported",
        ),
        (
            fit_binary(
                &x,
                &[true, false],
                &FitOptions {
                    bounds: Some(vec![]),
                    ..FitOptions::default()
                },
            )
            .map(drop),
            "0 bounds for 1 features",
        ),
        (
            fit_binary(
                &x,
                &[true, false],
                &FitOptions {
                    sample_weight: Some(vec![1.0, -1.0]),
                    ..FitOptions::default()
                },
            )
            .map(drop),
            "sample weight 1 is -1",
        ),
        (
            fit_binary(
                &x,
                &[true, false],
                &FitOptions {
                    l2: f64::NAN,
                    ..FitOptions::default()
                },
            )
            .map(drop),
            "l2 must be",
        ),
    ];
    for (result, want) in cases {
        let err = result.expect_err(want).to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    // A middle ordinal class may be empty; the outer ones may not.
    assert!(fit_ordinal(&x, &[0, 2], 3, &opts).is_ok());
    assert!(fit_ordinal(&x, &[0, 1], 3, &opts).is_err());
}
