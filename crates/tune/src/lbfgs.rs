//! Limited-memory quasi-Newton minimiser with optional box constraints.
//!
//! All the fitters in [`super::logreg`] minimise a smooth objective whose gradient costs one pass
//! over the data. L-BFGS needs no step-size tuning and stores only `memory` vector pairs, so the
//! same code serves 100 rule weights and 150k TF-IDF weights.
//!
//! Bounds (a weight that must stay ≥ 0, ordinal cut gaps that must stay positive) use the
//! projected quasi-Newton scheme of Kim, Sra & Dhillon (2010): variables at a bound whose gradient
//! pushes outwards are held fixed, the L-BFGS direction is computed on the others, and each trial
//! point is projected back into the box before the Armijo test. Without bounds this is plain
//! L-BFGS with a backtracking line search.

use std::collections::VecDeque;

/// Stopping rules and memory size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Options {
    pub max_iter: usize,
    /// Stop when the projected gradient's largest component is at most this.
    pub gtol: f64,
    /// Stop when an iteration lowers the objective by at most `ftol * max(|f|, 1)`.
    pub ftol: f64,
    pub memory: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Minimises `f` (which returns the value and writes the gradient) from `x0`, keeping
/// `lower[i] <= x[i] <= upper[i]` (use infinities for free variables).
pub(crate) fn minimize<F>(
    mut f: F,
    x0: Vec<f64>,
    lower: &[f64],
    upper: &[f64],
    opts: &Options,
) -> Outcome
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let mut x = x0;
    project(&mut x, lower, upper);
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    let mut d = vec![0.0; n];
    let mut history: VecDeque<Pair> = VecDeque::with_capacity(opts.memory);
    let mut alpha = vec![0.0; opts.memory.max(1)];

    if !fx.is_finite() {
        return Outcome {
            x,
            value: fx,
            iterations: 0,
            converged: false,
        };
    }

    let mut iterations = 0;
    let mut converged = false;
    while iterations < opts.max_iter {
        if projected_gradient_norm(&x, &g, lower, upper) <= opts.gtol {
            converged = true;
            break;
        }
        direction(&history, &x, &g, lower, upper, &mut d, &mut alpha);
        let mut slope = dot(&g, &d);
        if slope.is_nan() || slope >= 0.0 {
            // The quasi-Newton model went stale (possible with bounds): restart from steepest
            // descent, which is always a descent direction on the free variables.
            history.clear();
            direction(&history, &x, &g, lower, upper, &mut d, &mut alpha);
            slope = dot(&g, &d);
            if slope.is_nan() || slope >= 0.0 {
                converged = true;
                break;
            }
        }
        let step = if history.is_empty() {
            (1.0 / inf_norm(&d)).min(1.0)
        } else {
            1.0
        };
        let accepted = line_search(
            &mut f,
            &Here {
                x: &x,
                g: &g,
                fx,
                d: &d,
                slope,
            },
            step,
            (lower, upper),
            (&mut xn, &mut gn),
        );
        let Some(value) = accepted else {
            if history.is_empty() {
                // Not even a tiny steepest-descent step lowers f: we are at the limit of
                // floating-point precision, which is as converged as it gets.
                converged = true;
                break;
            }
            history.clear();
            continue;
        };
        iterations += 1;

        remember(&mut history, opts.memory, (&x, &g), (&xn, &gn));
        let decrease = fx - value;
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        fx = value;
        if decrease <= opts.ftol * fx.abs().max(1.0) {
            converged = true;
            break;
        }
    }
    if !converged && projected_gradient_norm(&x, &g, lower, upper) <= opts.gtol {
        converged = true;
    }
    Outcome {
        x,
        value: fx,
        iterations,
        converged,
    }
}

/// Where a line search starts: the point, its gradient and value, the search direction and
/// the slope `g·d` along it.
struct Here<'a> {
    x: &'a [f64],
    g: &'a [f64],
    fx: f64,
    d: &'a [f64],
    slope: f64,
}

/// Backtracking from `step` along `d`, each trial projected into the box `(lower, upper)`,
/// until the Armijo test passes (at most 50 trials): the value there, with the point and its
/// gradient in `next`; `None` when no trial passed.
fn line_search<F>(
    f: &mut F,
    here: &Here,
    mut step: f64,
    (lower, upper): (&[f64], &[f64]),
    (xn, gn): (&mut [f64], &mut [f64]),
) -> Option<f64>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let Here { x, g, fx, d, slope } = *here;
    for _ in 0..50 {
        for i in 0..x.len() {
            xn[i] = (x[i] + step * d[i]).clamp(lower[i], upper[i]);
        }
        let moved: f64 = (0..x.len()).map(|i| g[i] * (xn[i] - x[i])).sum();
        let value = f(xn, gn);
        if value.is_finite() && moved < 0.0 && value <= fx + 1e-4 * moved {
            return Some(value);
        }
        // Minimum of the quadratic through f(x), the slope and f(x + step d), kept within
        // [0.1, 0.5] of the current step so a bad fit cannot stall or overshoot.
        let shrink = if value.is_finite() {
            let denom = 2.0 * (value - fx - slope * step);
            if denom > 0.0 {
                (-slope * step / denom).clamp(0.1, 0.5)
            } else {
                0.5
            }
        } else {
            0.1
        };
        step *= shrink;
    }
    None
}

/// Keep the step from `x` to `xn` and the change of gradient from `g` to `gn` (at most
/// `memory` pairs, the oldest dropped), unless the pair lacks positive curvature: it would
/// make the inverse Hessian indefinite.
fn remember(
    history: &mut VecDeque<Pair>,
    memory: usize,
    (x, g): (&[f64], &[f64]),
    (xn, gn): (&[f64], &[f64]),
) {
    let n = x.len();
    let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
    let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
    let sy = dot(&s, &y);
    let yy = dot(&y, &y);
    if sy > 1e-12 * yy.max(f64::MIN_POSITIVE) && sy > 0.0 {
        if history.len() == memory {
            history.pop_front();
        }
        history.push_back(Pair {
            s,
            y,
            rho: 1.0 / sy,
            gamma: sy / yy,
        });
    }
}

struct Pair {
    s: Vec<f64>,
    y: Vec<f64>,
    rho: f64,
    gamma: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn project(x: &mut [f64], lower: &[f64], upper: &[f64]) {
    for i in 0..x.len() {
        x[i] = x[i].clamp(lower[i], upper[i]);
    }
}

/// A variable is held when it sits on a bound and the gradient pushes it further out.
fn held(x: f64, g: f64, lower: f64, upper: f64) -> bool {
    (x <= lower && g > 0.0) || (x >= upper && g < 0.0)
}

/// Largest component of `x - P(x - g)`: zero exactly at a constrained stationary point.
pub(crate) fn projected_gradient_norm(x: &[f64], g: &[f64], lower: &[f64], upper: &[f64]) -> f64 {
    (0..x.len())
        .map(|i| (x[i] - (x[i] - g[i]).clamp(lower[i], upper[i])).abs())
        .fold(0.0, f64::max)
}

/// `d = -H g` on the free variables by the two-loop recursion; zero on held variables and on
/// variables at a bound that `d` would push outwards (the projection would cancel that move,
/// and leaving it in could make the projected step an ascent).
fn direction(
    history: &VecDeque<Pair>,
    x: &[f64],
    g: &[f64],
    lower: &[f64],
    upper: &[f64],
    d: &mut [f64],
    alpha: &mut [f64],
) {
    for (i, di) in d.iter_mut().enumerate() {
        *di = if held(x[i], g[i], lower[i], upper[i]) {
            0.0
        } else {
            g[i]
        };
    }
    for (k, pair) in history.iter().enumerate().rev() {
        let a = pair.rho * dot(&pair.s, d);
        alpha[k] = a;
        for (di, yi) in d.iter_mut().zip(&pair.y) {
            *di -= a * yi;
        }
    }
    if let Some(last) = history.back() {
        for v in d.iter_mut() {
            *v *= last.gamma;
        }
    }
    for (k, pair) in history.iter().enumerate() {
        let b = pair.rho * dot(&pair.y, d);
        for (di, si) in d.iter_mut().zip(&pair.s) {
            *di += (alpha[k] - b) * si;
        }
    }
    for (i, di) in d.iter_mut().enumerate() {
        let v = -*di;
        *di = if held(x[i], g[i], lower[i], upper[i])
            || (x[i] <= lower[i] && v < 0.0)
            || (x[i] >= upper[i] && v > 0.0)
        {
            0.0
        } else {
            v
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            max_iter: 500,
            gtol: 1e-9,
            ftol: 0.0,
            memory: 10,
        }
    }

    /// Rosenbrock's banana: a curved valley that defeats naive gradient descent.
    fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
        let (a, b) = (x[0], x[1]);
        g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
        g[1] = 200.0 * (b - a * a);
        (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let inf = f64::INFINITY;
        let out = minimize(rosenbrock, vec![-1.2, 1.0], &[-inf; 2], &[inf; 2], &opts());
        assert!(out.converged, "{out:?}");
        assert!(
            (out.x[0] - 1.0).abs() < 1e-6 && (out.x[1] - 1.0).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn box_constrained_quadratic_lands_on_the_kkt_point() {
        // min Σ c_i (x_i - t_i)^2 with x in [0, 1]: the answer is t clamped to the box.
        let t = [-2.0, 0.3, 5.0, 0.9];
        let c = [1.0, 10.0, 0.1, 3.0];
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..4 {
                v += c[i] * (x[i] - t[i]).powi(2);
                g[i] = 2.0 * c[i] * (x[i] - t[i]);
            }
            v
        };
        let out = minimize(f, vec![0.5; 4], &[0.0; 4], &[1.0; 4], &opts());
        assert!(out.converged, "{out:?}");
        let expected = [0.0, 0.3, 1.0, 0.9];
        for (got, want) in out.x.iter().zip(expected) {
            assert!((got - want).abs() < 1e-8, "{out:?}");
        }
    }

    #[test]
    fn coupled_quadratic_with_an_active_bound() {
        // f = (x0 + x1 - 1)^2 + (x0 - x1 + 3)^2 has its free minimum at (-1, 2). With x0 >= 0:
        // at x0 = 0, df/dx1 = 0 gives x1 = 2, and there df/dx0 = 4 > 0 pushes out of the box,
        // so (0, 2) is the KKT point.
        let f = |x: &[f64], g: &mut [f64]| {
            let a = x[0] + x[1] - 1.0;
            let b = x[0] - x[1] + 3.0;
            g[0] = 2.0 * a + 2.0 * b;
            g[1] = 2.0 * a - 2.0 * b;
            a * a + b * b
        };
        let inf = f64::INFINITY;
        let out = minimize(f, vec![3.0, -3.0], &[0.0, -inf], &[inf, inf], &opts());
        assert!(out.converged, "{out:?}");
        assert!(
            out.x[0].abs() < 1e-12 && (out.x[1] - 2.0).abs() < 1e-8,
            "{out:?}"
        );
    }

    #[test]
    fn non_finite_start_is_reported_not_converged() {
        let f = |_: &[f64], _: &mut [f64]| f64::NAN;
        let out = minimize(
            f,
            vec![0.0],
            &[f64::NEG_INFINITY],
            &[f64::INFINITY],
            &opts(),
        );
        assert!(!out.converged);
    }
}
