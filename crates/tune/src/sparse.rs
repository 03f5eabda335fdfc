//! Sparse feature vectors and the row-major dataset the fitters consume.
//!
//! Rule hits are a handful of ones per email and TF-IDF rows have a few dozen non-zeros out of
//! tens of thousands of columns, so both are stored as sorted `(column, value)` pairs.

use anyhow::{Result, bail};

/// A sparse vector: `(column, value)` pairs, columns strictly increasing, no stored zeros.
///
/// The invariant is kept by the constructors, so dot products can walk the pairs without checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVec {
    entries: Vec<(usize, f64)>,
}

impl SparseVec {
    /// The empty vector (every column zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from pairs in any order: duplicate columns are summed, zeros dropped.
    pub fn from_pairs(mut pairs: Vec<(usize, f64)>) -> Self {
        pairs.sort_by_key(|&(column, _)| column);
        let mut entries: Vec<(usize, f64)> = Vec::with_capacity(pairs.len());
        for (column, value) in pairs {
            match entries.last_mut() {
                Some(last) if last.0 == column => last.1 += value,
                _ => entries.push((column, value)),
            }
        }
        entries.retain(|&(_, value)| value != 0.0);
        Self { entries }
    }

    /// Builds a vector from a dense slice, keeping the non-zero entries.
    pub fn from_dense(values: &[f64]) -> Self {
        let entries = values
            .iter()
            .enumerate()
            .filter(|&(_, &v)| v != 0.0)
            .map(|(i, &v)| (i, v))
            .collect();
        Self { entries }
    }

    /// The stored `(column, value)` pairs, columns increasing.
    pub fn entries(&self) -> &[(usize, f64)] {
        &self.entries
    }

    /// Number of stored (non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.entries.len()
    }

    /// True when every entry is zero.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One past the largest stored column (0 for the empty vector).
    pub fn dim_hint(&self) -> usize {
        self.entries.last().map_or(0, |&(column, _)| column + 1)
    }

    /// Value at `column` (zero when not stored).
    pub fn get(&self, column: usize) -> f64 {
        match self.entries.binary_search_by_key(&column, |&(c, _)| c) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0.0,
        }
    }

    /// `self · dense`. Columns beyond `dense.len()` count as zero, so a model trained on fewer
    /// columns still scores a wider row instead of panicking.
    pub fn dot(&self, dense: &[f64]) -> f64 {
        self.entries
            .iter()
            .map(|&(column, value)| dense.get(column).map_or(0.0, |w| w * value))
            .sum()
    }

    /// `out += alpha * self`, ignoring columns beyond `out.len()` (see [`SparseVec::dot`]).
    pub fn add_scaled_to(&self, alpha: f64, out: &mut [f64]) {
        for &(column, value) in &self.entries {
            if let Some(o) = out.get_mut(column) {
                *o += alpha * value;
            }
        }
    }

    /// Euclidean norm.
    pub fn norm(&self) -> f64 {
        self.entries.iter().map(|&(_, v)| v * v).sum::<f64>().sqrt()
    }

    /// Multiplies every value by `factor` (a zero factor empties the vector).
    pub fn scale(&mut self, factor: f64) {
        if factor == 0.0 {
            self.entries.clear();
        } else {
            for entry in &mut self.entries {
                entry.1 *= factor;
            }
        }
    }
}

/// A dataset: one sparse row per example, all with the same number of columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    rows: Vec<SparseVec>,
    n_features: usize,
}

impl Matrix {
    /// Checks that every row fits in `n_features` columns and that all values are finite, so a
    /// bad input fails here with the row number instead of as NaN weights after a long fit.
    pub fn new(rows: Vec<SparseVec>, n_features: usize) -> Result<Self> {
        for (i, row) in rows.iter().enumerate() {
            if row.dim_hint() > n_features {
                bail!(
                    "row {i} has a value in column {} but the matrix has {n_features} columns",
                    row.dim_hint() - 1
                );
            }
            if let Some(&(column, value)) = row.entries.iter().find(|(_, v)| !v.is_finite()) {
                bail!("row {i} column {column} is {value}; features must be finite");
            }
        }
        Ok(Self { rows, n_features })
    }

    /// A matrix from dense rows (tests and small rule-hit tables).
    pub fn from_dense(rows: &[Vec<f64>], n_features: usize) -> Result<Self> {
        Self::new(
            rows.iter().map(|r| SparseVec::from_dense(r)).collect(),
            n_features,
        )
    }

    pub fn rows(&self) -> &[SparseVec] {
        &self.rows
    }

    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The rows at `indices`, in that order (for cross-validation splits).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let mut rows = Vec::with_capacity(indices.len());
        for &i in indices {
            match self.rows.get(i) {
                Some(row) => rows.push(row.clone()),
                None => bail!("row index {i} out of range ({} rows)", self.rows.len()),
            }
        }
        Ok(Self {
            rows,
            n_features: self.n_features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_sums_duplicates_and_drops_zeros() {
        let v = SparseVec::from_pairs(vec![
            (5, 1.0),
            (2, 2.0),
            (5, 0.5),
            (3, 0.0),
            (7, 1.0),
            (7, -1.0),
        ]);
        assert_eq!(v.entries(), &[(2, 2.0), (5, 1.5)]);
        assert_eq!(v.get(5), 1.5);
        assert_eq!(v.get(3), 0.0);
        assert_eq!(v.dim_hint(), 6);
    }

    #[test]
    fn dot_and_axpy_agree_with_dense_arithmetic() {
        let dense = [0.0, 1.5, 0.0, -2.0, 4.0];
        let v = SparseVec::from_dense(&dense);
        assert_eq!(v.nnz(), 3);
        let w = [1.0, 2.0, 3.0, 4.0, 5.0];
        let expected: f64 = dense.iter().zip(&w).map(|(a, b)| a * b).sum();
        assert_eq!(v.dot(&w), expected);
        let mut out = [1.0; 5];
        v.add_scaled_to(2.0, &mut out);
        assert_eq!(out, [1.0, 4.0, 1.0, -3.0, 9.0]);
        assert!((v.norm() - (1.5f64 * 1.5 + 4.0 + 16.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn dot_ignores_columns_beyond_the_weights() {
        let v = SparseVec::from_pairs(vec![(0, 1.0), (9, 100.0)]);
        assert_eq!(v.dot(&[2.0, 0.0]), 2.0);
    }

    #[test]
    fn matrix_rejects_out_of_range_columns_and_non_finite_values() {
        let err = Matrix::new(
            vec![SparseVec::new(), SparseVec::from_pairs(vec![(4, 1.0)])],
            4,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("row 1") && err.contains("column 4"), "{err}");
        let err = Matrix::new(vec![SparseVec::from_pairs(vec![(0, f64::NAN)])], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("finite"), "{err}");
    }

    #[test]
    fn select_keeps_order_and_checks_bounds() {
        let m = Matrix::from_dense(&[vec![1.0], vec![2.0], vec![3.0]], 1).unwrap();
        let s = m.select(&[2, 0]).unwrap();
        assert_eq!(s.rows()[0].get(0), 3.0);
        assert_eq!(s.rows()[1].get(0), 1.0);
        assert!(m.select(&[3]).is_err());
    }
}
