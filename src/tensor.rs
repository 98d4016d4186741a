//! A row-major `f32` matrix and borrowed views of one.
//!
//! Rows are contiguous (`data[r * cols + c]`). Views carry their shape, so every
//! function that takes two of them can check that the shapes agree before it
//! touches memory.

use crate::error::{checked_size, ensure_shape, try_grow, try_vec, Error, Result};
use crate::kernels::reduce::all_finite;

/// An owned row-major matrix. Growing it (`resize_rows`) keeps the allocation
/// when the new size fits, which is how workspaces avoid allocating per step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

/// A borrowed, read-only row-major matrix.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [f32],
}

/// A borrowed, writable row-major matrix.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub rows: usize,
    pub cols: usize,
    pub data: &'a mut [f32],
}

impl Matrix {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// A `rows x cols` matrix of zeros, allocated fallibly: for sizes that come
    /// from a user, an input or a file.
    ///
    /// # Errors
    /// `Error::Config` when `rows * cols` overflows, `Error::Memory` when the
    /// memory cannot be reserved.
    pub fn try_zeros(rows: usize, cols: usize) -> Result<Self> {
        let n = checked_size(rows, cols, "a matrix")?;
        // The message is formatted only on failure: this runs on every predict call.
        let data = try_vec(n, 0.0, "a matrix").map_err(|_| Error::Memory(format!("cannot allocate a {rows}x{cols} matrix: {n} values ({} bytes) asked for", (n as u128) * 4)))?;
        Ok(Self { rows, cols, data })
    }

    /// Wraps `data` as a `rows x cols` matrix.
    ///
    /// # Errors
    /// `Error::Shape` when `data.len() != rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        ensure_shape(data.len() == rows * cols, || {
            format!("expected {rows}x{cols} = {} values, got {}", rows * cols, data.len())
        })?;
        Ok(Self { rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    pub fn view(&self) -> MatRef<'_> {
        MatRef { rows: self.rows, cols: self.cols, data: &self.data }
    }

    pub fn view_mut(&mut self) -> MatMut<'_> {
        MatMut { rows: self.rows, cols: self.cols, data: &mut self.data }
    }

    /// Sets the row count, keeping the column count. Reuses the allocation when
    /// it is large enough; new entries are zero, existing ones are unspecified
    /// for the caller (workspaces overwrite them).
    ///
    /// # Errors
    /// As [`Matrix::reshape_for`]; the matrix is then unchanged.
    pub fn resize_rows(&mut self, rows: usize) -> Result<()> {
        if rows != self.rows {
            self.reshape_for(rows, self.cols)?;
        }
        Ok(())
    }

    /// Sets both dimensions, reusing the allocation when it is large enough.
    /// Workspaces grow here with the batch a user passes, so growth is fallible.
    ///
    /// # Errors
    /// `Error::Config` when `rows * cols` overflows, `Error::Memory` when the
    /// memory cannot be reserved; the matrix is then unchanged.
    pub fn reshape_for(&mut self, rows: usize, cols: usize) -> Result<()> {
        let n = checked_size(rows, cols, "a workspace")?;
        if n > self.data.capacity() {
            // Only when growing: the message alone would allocate on every call.
            try_grow(&mut self.data, n, &format!("a {rows}x{cols} workspace"))?;
        }
        self.data.resize(n, 0.0);
        self.rows = rows;
        self.cols = cols;
        Ok(())
    }
}

impl<'a> MatRef<'a> {
    /// Views `data` as `rows x cols`.
    ///
    /// # Errors
    /// `Error::Shape` when `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: &'a [f32]) -> Result<Self> {
        ensure_shape(data.len() == rows * cols, || {
            format!("expected {rows}x{cols} = {} values, got {}", rows * cols, data.len())
        })?;
        Ok(Self { rows, cols, data })
    }

    /// Checks that the view holds at least one sample and only finite values;
    /// `name` is how the message refers to it (e.g. "X").
    ///
    /// # Errors
    /// `Error::Empty` for zero rows, `Error::NonFinite` for NaN or infinity.
    pub fn check_samples(&self, name: &str) -> Result<()> {
        self.check_samples_with(name, all_finite)
    }

    /// [`MatRef::check_samples`] with the finiteness scan done by `finite`
    /// (inference passes a scan that splits large inputs over the pool).
    ///
    /// # Errors
    /// As [`MatRef::check_samples`].
    pub fn check_samples_with(&self, name: &str, finite: fn(&[f32]) -> bool) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::Empty(format!("{name} has no samples; expected at least one row")));
        }
        if !finite(self.data) {
            return Err(Error::NonFinite(format!("{name} contains NaN or infinity; inputs must be finite")));
        }
        Ok(())
    }

    /// Row `r` as a slice.
    pub fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Rows `start..end` as a view (no copy).
    pub fn rows_range(&self, start: usize, end: usize) -> MatRef<'a> {
        MatRef { rows: end - start, cols: self.cols, data: &self.data[start * self.cols..end * self.cols] }
    }
}

impl<'a> MatMut<'a> {
    /// Views `data` as a writable `rows x cols` matrix.
    ///
    /// # Errors
    /// `Error::Shape` when `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: &'a mut [f32]) -> Result<Self> {
        ensure_shape(data.len() == rows * cols, || {
            format!("expected {rows}x{cols} = {} values, got {}", rows * cols, data.len())
        })?;
        Ok(Self { rows, cols, data })
    }

    pub fn as_ref(&self) -> MatRef<'_> {
        MatRef { rows: self.rows, cols: self.cols, data: self.data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_length() {
        assert!(Matrix::from_vec(2, 3, vec![0.0; 5]).is_err());
        let m = Matrix::from_vec(2, 3, (0..6).map(|v| v as f32).collect()).unwrap();
        assert_eq!(m.view().row(1), &[3.0, 4.0, 5.0]);
        assert_eq!(m.view().rows_range(1, 2).data, &[3.0, 4.0, 5.0]);
    }

    #[test]
    fn resize_keeps_columns() {
        let mut m = Matrix::zeros(2, 4);
        m.resize_rows(5).unwrap();
        assert_eq!((m.rows(), m.cols(), m.as_slice().len()), (5, 4, 20));
        m.resize_rows(1).unwrap();
        assert_eq!(m.as_slice().len(), 4);
    }
}
