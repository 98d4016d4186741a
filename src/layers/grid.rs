//! Geometry shared by the convolution and pooling kinds: a sample's grid of
//! positions and channels, the sliding window over it, and the gather/scatter
//! kernels (im2col, col2im) that turn a convolution into one GEMM.
//!
//! The core keeps one contiguous row per sample. An image is that row read as
//! `[h, w, c]` (channels_last, Keras' default) or `[c, h, w]` (channels_first,
//! PyTorch's); a sequence is the same with `h = 1`. Every kernel here addresses
//! a sample through the strides of its layout, so both layouts share the code.
//! Sizes come from users or files: every product is checked.

use multiversion::multiversion;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, Error, Result};
use crate::kernels::parallel_for;

/// How a sample's values are ordered: channels after the positions (Keras'
/// default, `[h, w, c]`) or before them (PyTorch's `[c, h, w]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    #[default]
    ChannelsLast,
    ChannelsFirst,
}

impl DataFormat {
    /// Whether this is the default, channels_last (specs leave the default out).
    pub fn is_channels_last(&self) -> bool {
        *self == DataFormat::ChannelsLast
    }
}

/// One sample's grid: `h × w` positions (`h = 1` for sequences) of `c` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub format: DataFormat,
}

impl Grid {
    /// The grid of a per-sample shape as a spec stores it, in the layout's
    /// order: `[h, w, c]` / `[l, c]` (channels_last) or `[c, h, w]` / `[c, l]`.
    ///
    /// # Errors
    /// `Error::Config` for a rank other than 2 or 3, a zero size, or an overflow.
    pub fn from_shape(shape: &[usize], format: DataFormat, kind: &str) -> Result<Grid> {
        ensure_config(shape.len() == 2 || shape.len() == 3, || format!("{kind} input shape must have 2 (sequence) or 3 (image) axes, got {shape:?}"))?;
        ensure_config(shape.iter().all(|&s| s > 0), || format!("{kind} input shape {shape:?} has an empty axis"))?;
        let (c, spatial) = match format {
            DataFormat::ChannelsLast => (shape[shape.len() - 1], &shape[..shape.len() - 1]),
            DataFormat::ChannelsFirst => (shape[0], &shape[1..]),
        };
        let (h, w) = if spatial.len() == 2 { (spatial[0], spatial[1]) } else { (1, spatial[0]) };
        let grid = Grid { h, w, c, format };
        grid.len(kind)?;
        Ok(grid)
    }

    /// Positions per sample.
    pub fn positions(&self) -> usize {
        self.h * self.w
    }

    /// Values per sample, checked.
    ///
    /// # Errors
    /// `Error::Config` naming `kind` when the product overflows.
    pub fn len(&self, kind: &str) -> Result<usize> {
        checked_size(checked_size(self.h, self.w, kind)?, self.c, kind)
    }

    /// (row, column, channel) strides of this layout within a sample.
    pub fn strides(&self) -> (usize, usize, usize) {
        match self.format {
            DataFormat::ChannelsLast => (self.w * self.c, self.c, 1),
            DataFormat::ChannelsFirst => (self.w, 1, self.h * self.w),
        }
    }
}

/// A sliding window: its size, stride, dilation and the zero padding before
/// and after each spatial axis (`[rows, cols]`; a sequence has a 1-row window
/// over its 1-row grid), and the output grid size it produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub k: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub pad_begin: [usize; 2],
    pub out: [usize; 2],
}

/// A spec's per-axis list (one value per spatial axis) as `[rows, cols]`.
fn pair(v: &[usize], rank: usize, name: &str, kind: &str, fill: usize) -> Result<[usize; 2]> {
    ensure_config(v.len() == rank, || format!("{kind} {name} needs {rank} value(s) (one per spatial axis), got {v:?}"))?;
    Ok(if rank == 2 { [v[0], v[1]] } else { [fill, v[0]] })
}

impl Window {
    /// Checks and builds the window of a spec over `grid`. `pads` lists the
    /// padding before and after each spatial axis (`[top, bottom, left,
    /// right]`, or `[left, right]` for sequences); `rank` is 1 or 2.
    ///
    /// # Errors
    /// `Error::Config` for a size, stride or dilation of 0, a wrong list
    /// length, an overflow, or an input smaller than the (dilated) window.
    pub fn new(grid: &Grid, rank: usize, k: &[usize], stride: &[usize], dilation: &[usize], pads: &[usize], kind: &str) -> Result<Window> {
        let k = pair(k, rank, "kernel size", kind, 1)?;
        let stride = pair(stride, rank, "strides", kind, 1)?;
        let dilation = pair(dilation, rank, "dilation", kind, 1)?;
        ensure_config(pads.len() == 2 * rank, || format!("{kind} padding needs {} values (before and after each spatial axis), got {pads:?}", 2 * rank))?;
        let (pad_begin, pad_end) = if rank == 2 { ([pads[0], pads[2]], [pads[1], pads[3]]) } else { ([0, pads[0]], [0, pads[1]]) };
        for (name, v) in [("kernel size", k), ("strides", stride), ("dilation", dilation)] {
            ensure_config(v.iter().all(|&s| s > 0), || format!("{kind} {name} must be at least 1, got {v:?}"))?;
        }
        let mut out = [0; 2];
        for (a, size) in [grid.h, grid.w].into_iter().enumerate() {
            let span = (k[a] - 1).checked_mul(dilation[a]).and_then(|s| s.checked_add(1));
            let padded = size.checked_add(pad_begin[a]).and_then(|s| s.checked_add(pad_end[a]));
            let (span, padded) = span.zip(padded).ok_or_else(|| Error::Config(format!("{kind} window or padding is too large")))?;
            ensure_config(padded >= span, || {
                format!("{kind} input of size {} along spatial axis {} (padded to {padded}) is smaller than its window of {span}", size, a + 2 - rank)
            })?;
            out[a] = (padded - span) / stride[a] + 1;
        }
        Ok(Window { k, stride, dilation, pad_begin, out })
    }

    /// Output positions per sample.
    pub fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// Values of one window (per channel).
    pub fn cells(&self) -> usize {
        self.k[0] * self.k[1]
    }

    /// Whether one window row's cells of a channel group lie side by side in
    /// the input (channels_last, all channels in the group, no horizontal
    /// dilation), so that im2col and col2im move each window row as one span.
    pub fn row_spans(&self, grid: &Grid, cg: usize) -> bool {
        grid.format == DataFormat::ChannelsLast && cg == grid.c && self.dilation[1] == 1
    }

    /// For every output position `r` (row-major) and window row `ky` inside
    /// the input: `f(r, offset of the window row in the im2col row, lo, hi,
    /// input offset of cell lo)`, where cells `lo..hi` of the window row fall
    /// inside the input (`lo == hi` when none does) and the others in the
    /// padding. Window rows wholly in the padding are passed with `lo == hi == 0`.
    /// Only for [`Window::row_spans`] geometry.
    #[inline]
    fn each_span(&self, grid: &Grid, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        let (c, k1) = (grid.c, self.k[1]);
        for oy in 0..self.out[0] {
            for ox in 0..self.out[1] {
                let r = oy * self.out[1] + ox;
                // Input column of cell 0, possibly left of the input (in the padding).
                let x0 = (ox * self.stride[1]) as isize - self.pad_begin[1] as isize;
                let lo = (-x0).clamp(0, k1 as isize) as usize;
                let hi = (grid.w as isize - x0).clamp(0, k1 as isize) as usize;
                for ky in 0..self.k[0] {
                    let iy = (oy * self.stride[0] + ky * self.dilation[0]).checked_sub(self.pad_begin[0]).filter(|&iy| iy < grid.h);
                    match iy {
                        Some(iy) if lo < hi => f(r, ky * k1 * c, lo, hi, (iy * grid.w + (x0 + lo as isize) as usize) * c),
                        _ => f(r, ky * k1 * c, 0, 0, 0),
                    }
                }
            }
        }
    }

    /// The input row and column of window cell `(ky, kx)` at output `(oy, ox)`,
    /// or `None` when it falls in the padding.
    #[inline]
    pub fn source(&self, grid: &Grid, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * self.stride[0] + ky * self.dilation[0]).checked_sub(self.pad_begin[0])?;
        let ix = (ox * self.stride[1] + kx * self.dilation[1]).checked_sub(self.pad_begin[1])?;
        (iy < grid.h && ix < grid.w).then_some((iy, ix))
    }
}

/// Runs `f(sample, chunk)` over consecutive `per`-long chunks of `buf`, on the
/// pool when the work is large. Each chunk is written by one call only, so
/// the result is the same whatever the thread count.
pub fn per_sample<T: Send>(buf: &mut [T], per: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if per == 0 {
        return;
    }
    if parallel_for(buf.len()) {
        buf.par_chunks_mut(per).enumerate().for_each(|(n, c)| f(n, c));
    } else {
        buf.chunks_mut(per).enumerate().for_each(|(n, c)| f(n, c));
    }
}

/// The im2col matrix of channel group `c0..c0 + cg` for every sample of `x`:
/// `cols` is `[samples · positions, cells · cg]`, each row one output
/// position's window in (ky, kx, channel) order, zero where it covers padding.
pub fn im2col(x: &[f32], grid: &Grid, win: &Window, c0: usize, cg: usize, cols: &mut [f32]) {
    let in_len = grid.h * grid.w * grid.c;
    let row = win.cells() * cg;
    let (sy, sx, sc) = grid.strides();
    if win.row_spans(grid, cg) {
        per_sample(cols, win.positions() * row, |n, out| {
            win.each_span(grid, |r, at, lo, hi, src| {
                let dst = &mut out[r * row + at..][..win.k[1] * cg];
                dst[..lo * cg].fill(0.0);
                dst[hi * cg..].fill(0.0);
                copy_span(&mut dst[lo * cg..hi * cg], &x[n * in_len + src..][..(hi - lo) * cg]);
            });
        });
        return;
    }
    per_sample(cols, win.positions() * row, |n, out| {
        let xs = &x[n * in_len..(n + 1) * in_len];
        for oy in 0..win.out[0] {
            for ox in 0..win.out[1] {
                let r = &mut out[(oy * win.out[1] + ox) * row..][..row];
                for ky in 0..win.k[0] {
                    for kx in 0..win.k[1] {
                        let dst = &mut r[(ky * win.k[1] + kx) * cg..][..cg];
                        match win.source(grid, oy, ox, ky, kx) {
                            None => dst.fill(0.0),
                            Some((iy, ix)) => {
                                let base = iy * sy + ix * sx + c0 * sc;
                                if sc == 1 {
                                    dst.copy_from_slice(&xs[base..base + cg]);
                                } else {
                                    dst.iter_mut().enumerate().for_each(|(c, d)| *d = xs[base + c * sc]);
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds each row of `cols` back onto the input
/// positions its window read (channels `c0..c0 + cg` of `dx`). `dx` must be
/// zeroed (or hold other groups' sums) before the first group.
pub fn col2im(cols: &[f32], grid: &Grid, win: &Window, c0: usize, cg: usize, dx: &mut [f32]) {
    let in_len = grid.h * grid.w * grid.c;
    let row = win.cells() * cg;
    let (sy, sx, sc) = grid.strides();
    if win.row_spans(grid, cg) {
        per_sample(dx, in_len, |n, xs| {
            let src = &cols[n * win.positions() * row..][..win.positions() * row];
            win.each_span(grid, |r, at, lo, hi, to| {
                if hi > lo {
                    add_into(&mut xs[to..to + (hi - lo) * cg], &src[r * row + at + lo * cg..][..(hi - lo) * cg]);
                }
            });
        });
        return;
    }
    per_sample(dx, in_len, |n, xs| {
        let src = &cols[n * win.positions() * row..][..win.positions() * row];
        for oy in 0..win.out[0] {
            for ox in 0..win.out[1] {
                let r = &src[(oy * win.out[1] + ox) * row..][..row];
                for ky in 0..win.k[0] {
                    for kx in 0..win.k[1] {
                        if let Some((iy, ix)) = win.source(grid, oy, ox, ky, kx) {
                            let base = iy * sy + ix * sx + c0 * sc;
                            let g = &r[(ky * win.k[1] + kx) * cg..][..cg];
                            if sc == 1 {
                                add_into(&mut xs[base..base + cg], g);
                            } else {
                                g.iter().enumerate().for_each(|(c, v)| xs[base + c * sc] += v);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// `dst = src` for the short spans of im2col (a window row: a few channels
/// times the kernel width): whole 16-value blocks as fixed-size copies, which
/// compile to vector moves instead of a `memcpy` call per span.
#[inline]
fn copy_span(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (a, b) in (&mut d).zip(&mut s) {
        let b: &[f32; 16] = b.try_into().expect("a 16-value block");
        a.copy_from_slice(b);
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = *b;
    }
}

/// `dst[i] += src[i]`, vectorised.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

/// Per sample, `dst[b][j][i] = src[b][i][j]` for `[rows, cols]` blocks: between a
/// channels_last `[positions, channels]` sample and a channels_first one.
pub fn transpose_samples(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    per_sample(dst, rows * cols, |n, d| {
        let s = &src[n * rows * cols..][..rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                d[j * rows + i] = s[i * cols + j];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(h: usize, w: usize, c: usize) -> Grid {
        Grid { h, w, c, format: DataFormat::ChannelsLast }
    }

    #[test]
    fn output_size_follows_the_formula() {
        // floor((in + pads - dilation·(k-1) - 1) / stride) + 1
        let win = Window::new(&grid(7, 9, 1), 2, &[3, 2], &[2, 3], &[2, 1], &[1, 0, 0, 2], "t").unwrap();
        assert_eq!(win.out, [(7 + 1 - 4 - 1) / 2 + 1, (9 + 2 - 1 - 1) / 3 + 1]);
        let seq = Window::new(&grid(1, 10, 2), 1, &[4], &[3], &[1], &[1, 2], "t").unwrap();
        assert_eq!(seq.out, [1, (10 + 3 - 3 - 1) / 3 + 1]);
    }

    #[test]
    fn bad_windows_are_config_errors() {
        let g = grid(4, 4, 1);
        for (k, s, d) in [([0, 1], [1, 1], [1, 1]), ([1, 1], [0, 1], [1, 1]), ([1, 1], [1, 1], [1, 0]), ([5, 1], [1, 1], [1, 1]), ([3, 3], [1, 1], [2, 2])] {
            assert!(matches!(Window::new(&g, 2, &k, &s, &d, &[0; 4], "t"), Err(Error::Config(_))));
        }
        assert!(matches!(Window::new(&g, 2, &[usize::MAX, 1], &[1, 1], &[2, 1], &[0; 4], "t"), Err(Error::Config(_))));
        assert!(matches!(Window::new(&g, 2, &[1, 1], &[1, 1], &[1, 1], &[usize::MAX, 1, 0, 0], "t"), Err(Error::Config(_))));
        assert!(matches!(Grid::from_shape(&[usize::MAX, 3, 2], DataFormat::ChannelsLast, "t"), Err(Error::Config(_))));
        assert!(matches!(Grid::from_shape(&[2, 0, 2], DataFormat::ChannelsLast, "t"), Err(Error::Config(_))));
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for both layouts, with padding, stride and dilation;
        // two of four channels (per-cell copies), and all four (channels_last: window rows
        // moved as spans, including rows and cells wholly in the padding).
        let cases = [(DataFormat::ChannelsLast, 1, 2), (DataFormat::ChannelsFirst, 1, 2), (DataFormat::ChannelsLast, 0, 4), (DataFormat::ChannelsFirst, 0, 4)];
        for (format, c0, cg) in cases {
            let g = Grid { h: 5, w: 6, c: 4, format };
            let win = Window::new(&g, 2, &[2, 3], &[2, 1], &[2, 1], &[1, 1, 3, 2], "t").unwrap();
            assert_eq!(win.row_spans(&g, cg), format == DataFormat::ChannelsLast && cg == 4);
            let n = 2;
            let x: Vec<f32> = (0..n * 120).map(|i| ((i * 37 % 17) as f32) - 8.0).collect();
            let rows = n * win.positions();
            let k = win.cells() * cg;
            let c: Vec<f32> = (0..rows * k).map(|i| ((i * 13 % 11) as f32) - 5.0).collect();
            let mut cols = vec![f32::NAN; rows * k];
            im2col(&x, &g, &win, c0, cg, &mut cols);
            let mut dx = vec![0.0; x.len()];
            col2im(&c, &g, &win, c0, cg, &mut dx);
            let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            assert_eq!(lhs, rhs);
        }
    }
}
