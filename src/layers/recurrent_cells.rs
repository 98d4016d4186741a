//! The per-step arithmetic of the recurrent cells, one sample's row at a
//! time, fused: bias add, gate nonlinearities and state update forward; the
//! chain rule through them backward. The time loops and the matrix products
//! around them live in recurrent_pass.rs.
//!
//! Equations (PyTorch's, `x·W_ihᵀ + b_ih` in `proj`, `r = h·W_hhᵀ`; for
//! SimpleRNN and LSTM the layer has already added `b_hh + r` to `proj`; the
//! GRU's step is given `x·W_ihᵀ` and `r` apart and adds the biases itself):
//! - SimpleRNN: `h' = act(proj + r + b_hh)`.
//! - LSTM: `i, f, g, o = σ, σ, tanh, σ (proj + r + b_hh)`,
//!   `c' = f·c + i·g`, `h' = o·tanh(c')`.
//! - GRU: `r_t, z = σ(proj + r + b_hh)` (first two thirds),
//!   `n = tanh(proj_n + r_t·(r_n + b_hn))`, `h' = (1 − z)·n + z·h`.
//!
//! A padded step of a masked sequence (Keras' masking) leaves the state as
//! it was (`h' = h`, `c' = c`), so backward its gradient passes straight to
//! the step before and its gates get none.

use crate::activation::Activation;
use multiversion::multiversion;

use crate::kernels::math::{sigmoid, sigmoid_slice, tanh, tanh_slice};

/// A recurrence and what it saves per step for its backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Simple(Activation),
    Lstm,
    Gru,
}

/// One sample's inputs to a forward step.
pub struct RowFwd<'a> {
    /// SimpleRNN and LSTM: the whole pre-activation `[G·units]` (see
    /// [`Cell::direct`]); GRU: `x·W_ihᵀ` alone (its step adds the biases).
    pub proj: &'a [f32],
    pub b_ih: &'a [f32],
    pub b_hh: &'a [f32],
    /// `h_{t-1}` and (LSTM) `c_{t-1}`, `[units]`.
    pub prev: &'a [f32],
    pub c_prev: &'a [f32],
}

/// One sample's inputs to a backward step.
pub struct RowBack<'a> {
    /// What the forward step saved (SimpleRNN: its pre-activation).
    pub saved: &'a [f32],
    /// `h_{t-1}`, `h_t` and (LSTM) `c_{t-1}`, `[units]`.
    pub prev: &'a [f32],
    pub out: &'a [f32],
    pub c_prev: &'a [f32],
    /// The gradient w.r.t. `h_t`.
    pub dh: &'a [f32],
}

impl Cell {
    /// Whether the recurrent product adds straight onto the input projection
    /// (`proj + h·W_hhᵀ` is the whole pre-activation): SimpleRNN and LSTM. The
    /// GRU's candidate sees `r_t·(W_hn·h + b_hn)`, so it keeps the product
    /// apart; and the gate gradients are then the same for both products.
    pub fn direct(self) -> bool {
        self != Cell::Gru
    }

    /// Gates per unit (`G`).
    pub fn gates(self) -> usize {
        match self {
            Cell::Simple(_) => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// Gate-gradient values per sample and step (see
    /// [`Cell::backward_row`]): `G·units`, the GRU `4·units`, its two sets of
    /// gate gradients interleaved as `[d_n, d_r, d_z, d_rn]` so that the
    /// input projection's `(n, r, z)` (columns `0..3·units`) and the
    /// recurrent product's `(r, z, rn)` (columns `units..4·units`, `W_hh`'s
    /// own gate order) are each one column range, and the shared `d_r`, `d_z`
    /// are written once.
    pub fn grad_width(self, units: usize) -> usize {
        match self {
            Cell::Gru => 4 * units,
            _ => self.gates() * units,
        }
    }

    /// Where the recurrent product's `G·units` gate gradients start in a
    /// [`Cell::grad_width`] row (the input projection's start at 0).
    pub fn rec_offset(self, units: usize) -> usize {
        match self {
            Cell::Gru => units,
            _ => 0,
        }
    }

    /// How many of the input projection's gate gradients lead its row out of
    /// `W_ih`'s gate order: the GRU's candidate third comes first (`(n, r,
    /// z)`), so gate-gradient column `c` belongs to `W_ih` row `(c + G·units −
    /// lead) mod G·units`; 0 for the others, in order.
    pub fn in_lead(self, units: usize) -> usize {
        match self {
            Cell::Gru => units,
            _ => 0,
        }
    }

    /// Values saved per sample and step: LSTM its four gates and `tanh(c')`;
    /// GRU its three gates and `r_n + b_hn`; SimpleRNN its pre-activation.
    pub fn saved_width(self, units: usize) -> usize {
        units * match self {
            Cell::Simple(_) => 1,
            Cell::Lstm => 5,
            Cell::Gru => 4,
        }
    }

    /// Adds the biases to one sample's input projection `p` (`x·W_ihᵀ`),
    /// `p + b_ih + b_hh`, for SimpleRNN and LSTM, whose step product then
    /// accumulates onto it. The GRU leaves `p` as it is: its fused step adds
    /// the biases as it reads `p` (the same sums, one pass fewer).
    pub fn add_biases(self, p: &mut [f32], b_ih: &[f32], b_hh: &[f32]) {
        if self != Cell::Gru {
            add_two(p, b_ih, b_hh);
        }
    }

    /// One sample's step: writes its saved values, `h_t` into `next` and
    /// (LSTM) `c_t` into `c_next`. The GRU's `rec` holds `h_{t-1}·W_hhᵀ`; the
    /// others leave it unused. The GRU runs as one fused pass over the units
    /// (its nonlinearities the vectorised ones of kernels/math.rs, inlined,
    /// so each value has the bits the slice kernels give); the LSTM as
    /// separate passes, which measured faster than one fused pass with its
    /// five nonlinearities.
    pub fn forward_row(self, r: &RowFwd<'_>, rec: &[f32], saved: &mut [f32], next: &mut [f32], c_next: &mut [f32]) {
        let h = next.len();
        let p = r.proj;
        match self {
            Cell::Simple(act) => {
                saved.copy_from_slice(p);
                act.forward(p, next);
            }
            Cell::Lstm => {
                sigmoid_slice(&p[..2 * h], &mut saved[..2 * h]);
                tanh_slice(&p[2 * h..3 * h], &mut saved[2 * h..3 * h]);
                sigmoid_slice(&p[3 * h..], &mut saved[3 * h..4 * h]);
                lstm_cell(&saved[..4 * h], r.c_prev, c_next);
                let (gates, tc) = saved.split_at_mut(4 * h);
                tanh_slice(c_next, tc);
                mul_into(next, &gates[3 * h..], tc);
            }
            Cell::Gru => gru_step(p, rec, r.b_ih, r.b_hh, r.prev, saved, next),
        }
    }

    /// A padded step of one sample: the state carries over unchanged (the
    /// saved values are not read but zeroed, so that nothing stale meets the
    /// zero gradient).
    pub fn pass_row(self, prev: &[f32], c_prev: &[f32], saved: &mut [f32], next: &mut [f32], c_next: &mut [f32]) {
        saved.fill(0.0);
        next.copy_from_slice(prev);
        c_next.copy_from_slice(c_prev);
    }

    /// One sample's step back: the gradients w.r.t. the gate pre-activations
    /// into `d_gates` `[grad_width]` (see [`Cell::grad_width`]); the
    /// part of `dh_{t-1}` that bypasses `W_hh` (GRU's `z·dh`) into `carry`,
    /// which must hold zeros on entry; and (LSTM) `dc` replaced by the
    /// gradient w.r.t. `c_{t-1}`. The GRU's row holds its gate gradients
    /// both as the input projection and as the recurrent product sees them
    /// (the others' two products see the same gradients). The GRU also
    /// adds its recurrent candidate gradients `d_rn` to the sample's sums
    /// `bias_rn` while they are in registers; the other bias gradients are
    /// left to the layer, which sums these rows in its `weight_ih` product.
    pub fn backward_row(self, b: &RowBack<'_>, dc: &mut [f32], d_gates: &mut [f32], carry: &mut [f32], bias_rn: &mut [f32]) {
        match self {
            Cell::Simple(act) => {
                d_gates.copy_from_slice(b.dh);
                act.backward(b.saved, b.out, d_gates);
            }
            Cell::Lstm => lstm_back(b.saved, b.c_prev, b.dh, dc, d_gates),
            Cell::Gru => gru_back(b.saved, b.prev, b.dh, d_gates, carry, bias_rn),
        }
    }

    /// A padded step back: it was `h_t = h_{t-1}` (and `c_t = c_{t-1}`, so
    /// `dc` stays), so its gates get no gradient and `dh` passes on whole.
    pub fn pass_row_back(self, dh: &[f32], d_gates: &mut [f32], carry: &mut [f32]) {
        d_gates.fill(0.0);
        carry.copy_from_slice(dh);
    }
}

// Row kernels: plain loops over equal-length slices, multiversioned so that
// each is vectorised for the CPU it runs on.

/// `v = v + a + b`, summed in that order.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn add_two(v: &mut [f32], a: &[f32], b: &[f32]) {
    v.iter_mut().zip(a.iter().zip(b)).for_each(|(v, (x, y))| *v = *v + x + y);
}

/// `out = a·b`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn mul_into(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x * y);
}

/// LSTM `c' = f·c + i·g` from the activated gates `[i, f, g, o]`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn lstm_cell(gates: &[f32], c_prev: &[f32], c: &mut [f32]) {
    let h = c.len();
    let (ig, fg, gg) = (&gates[..h], &gates[h..2 * h], &gates[2 * h..3 * h]);
    let cp = &c_prev[..h];
    for j in 0..h {
        c[j] = fg[j] * cp[j] + ig[j] * gg[j];
    }
}

/// GRU step of one sample's row: `p` `x·W_ihᵀ`, `rec` `h·W_hhᵀ`, `bi` and
/// `bh` the biases: `r, z = σ(rec + ((p + bi) + bh))`,
/// `n = tanh((p_n + bi_n) + r·(rec_n + bh_n))`, `h' = (1 − z)·n + z·h`;
/// saves `[r, z, n, rec_n + bh_n]`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn gru_step(p: &[f32], rec: &[f32], bi: &[f32], bh: &[f32], prev: &[f32], saved: &mut [f32], out: &mut [f32]) {
    let h = out.len();
    let (pr, pz, pn) = (&p[..h], &p[h..2 * h], &p[2 * h..3 * h]);
    let (rr, rz, rn) = (&rec[..h], &rec[h..2 * h], &rec[2 * h..3 * h]);
    let (bir, biz, bin) = (&bi[..h], &bi[h..2 * h], &bi[2 * h..3 * h]);
    let (bhr, bhz, b_n) = (&bh[..h], &bh[h..2 * h], &bh[2 * h..3 * h]);
    let prev = &prev[..h];
    let (sr, rest) = saved[..4 * h].split_at_mut(h);
    let (sz, rest) = rest.split_at_mut(h);
    let (sn, shh) = rest.split_at_mut(h);
    for j in 0..h {
        let (r, z) = (sigmoid(rr[j] + (pr[j] + bir[j] + bhr[j])), sigmoid(rz[j] + (pz[j] + biz[j] + bhz[j])));
        let hh = rn[j] + b_n[j];
        let n = tanh((pn[j] + bin[j]) + r * hh);
        (sr[j], sz[j], sn[j], shh[j]) = (r, z, n, hh);
        out[j] = (1.0 - z) * n + z * prev[j];
    }
}

/// LSTM backward of one sample's row: saved `[i, f, g, o, tanh(c')]`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn lstm_back(sv: &[f32], c_prev: &[f32], dh: &[f32], dc: &mut [f32], dg: &mut [f32]) {
    let h = dh.len();
    let (ig, fg, gg, og, tc) = (&sv[..h], &sv[h..2 * h], &sv[2 * h..3 * h], &sv[3 * h..4 * h], &sv[4 * h..5 * h]);
    let (cp, dc) = (&c_prev[..h], &mut dc[..h]);
    let (di, rest) = dg[..4 * h].split_at_mut(h);
    let (df, rest) = rest.split_at_mut(h);
    let (dgg, d_o) = rest.split_at_mut(h);
    for j in 0..h {
        let dct = dc[j] + dh[j] * og[j] * (1.0 - tc[j] * tc[j]);
        let d_i = dct * gg[j] * ig[j] * (1.0 - ig[j]);
        let d_f = dct * cp[j] * fg[j] * (1.0 - fg[j]);
        let d_g = dct * ig[j] * (1.0 - gg[j] * gg[j]);
        let d_out = dh[j] * tc[j] * og[j] * (1.0 - og[j]);
        (di[j], df[j], dgg[j], d_o[j]) = (d_i, d_f, d_g, d_out);
        dc[j] = dct * fg[j];
    }
}

/// GRU backward of one sample's row: saved `[r, z, n, r_n + b_hn]`. The
/// gate gradients go to `dg` `[d_n, d_r, d_z, d_rn]` (see
/// [`Cell::grad_width`]): the input projection's and the recurrent
/// product's are the same for `r` and `z`, the latter's candidate `d_rn`
/// scaled by the reset gate (`n` sees `r·(W_hn·h + b_hn)`); `bias_rn`
/// `[units]` gathers the sample's `d_rn`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn gru_back(sv: &[f32], prev: &[f32], dh: &[f32], dg: &mut [f32], carry: &mut [f32], bias_rn: &mut [f32]) {
    let h = dh.len();
    let (rg, zg, ng, hh) = (&sv[..h], &sv[h..2 * h], &sv[2 * h..3 * h], &sv[3 * h..4 * h]);
    let (hp, carry) = (&prev[..h], &mut carry[..h]);
    let (dn, rest) = dg[..4 * h].split_at_mut(h);
    let (dr, rest) = rest.split_at_mut(h);
    let (dz, rn) = rest.split_at_mut(h);
    let brn = &mut bias_rn[..h];
    for j in 0..h {
        let d_n = dh[j] * (1.0 - zg[j]) * (1.0 - ng[j] * ng[j]);
        let d_r = d_n * hh[j] * rg[j] * (1.0 - rg[j]);
        let d_z = dh[j] * (hp[j] - ng[j]) * zg[j] * (1.0 - zg[j]);
        let d_rn = d_n * rg[j];
        (dn[j], dr[j], dz[j], rn[j]) = (d_n, d_r, d_z, d_rn);
        brn[j] += d_rn;
        carry[j] = dh[j] * zg[j];
    }
}
