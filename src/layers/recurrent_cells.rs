//! The per-step arithmetic of the recurrent cells, each step one fused pass
//! over the batch: bias add, gate nonlinearities and state update forward;
//! the chain rule through them backward. The matrix products around them
//! live in recurrent.rs.
//!
//! Equations (PyTorch's, `x·W_ihᵀ + b_ih` already in `proj`, `r = h·W_hhᵀ`):
//! - SimpleRNN: `h' = act(proj + r + b_hh)`.
//! - LSTM: `i, f, g, o = σ, σ, tanh, σ (proj + r + b_hh)`,
//!   `c' = f·c + i·g`, `h' = o·tanh(c')`.
//! - GRU: `r_t, z = σ(proj + r + b_hh)` (first two thirds),
//!   `n = tanh(proj_n + r_t·(r_n + b_hn))`, `h' = (1 − z)·n + z·h`.

use crate::activation::Activation;
use crate::kernels::math::{sigmoid, tanh};

/// A recurrence and what it saves per step for its backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Simple(Activation),
    Lstm,
    Gru,
}

/// The inputs of one forward step over `n` samples.
pub struct StepFwd<'a> {
    pub units: usize,
    /// The input projections, sample-major `[n·steps, G·units]`; this step
    /// reads row `i·steps + time` for sample `i`.
    pub proj: &'a [f32],
    pub steps: usize,
    pub time: usize,
    /// `h_{t-1}·W_hhᵀ`, `[n, G·units]`.
    pub rec: &'a [f32],
    pub b_hh: &'a [f32],
    /// `h_{t-1}` and (LSTM) `c_{t-1}`, `[n, units]`.
    pub prev: &'a [f32],
    pub c_prev: &'a [f32],
}

/// The inputs of one backward step over `n` samples.
pub struct StepBack<'a> {
    pub units: usize,
    /// What the forward step saved.
    pub saved: &'a [f32],
    /// `h_{t-1}`, `h_t` and (LSTM) `c_{t-1}`, `[n, units]`.
    pub prev: &'a [f32],
    pub out: &'a [f32],
    pub c_prev: &'a [f32],
    /// The gradient w.r.t. `h_t`.
    pub dh: &'a [f32],
}

impl Cell {
    /// Gates per unit (`G`).
    pub fn gates(self) -> usize {
        match self {
            Cell::Simple(_) => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// Values saved per sample and step: SimpleRNN its pre-activation; LSTM
    /// its four gates and `tanh(c')`; GRU its three gates and `r_n + b_hn`.
    pub fn saved_width(self, units: usize) -> usize {
        units * match self {
            Cell::Simple(_) => 1,
            Cell::Lstm => 5,
            Cell::Gru => 4,
        }
    }

    /// One step: writes the saved values, `h_t` into `next` and (LSTM) `c_t` into `c_next`.
    pub fn forward_step(self, n: usize, s: &StepFwd<'_>, saved: &mut [f32], next: &mut [f32], c_next: &mut [f32]) {
        let h = s.units;
        let gh = self.gates() * h;
        let sw = self.saved_width(h);
        for i in 0..n {
            let row = i * s.steps + s.time;
            let p = &s.proj[row * gh..(row + 1) * gh];
            let r = &s.rec[i * gh..(i + 1) * gh];
            let sv = &mut saved[i * sw..(i + 1) * sw];
            let hn = &mut next[i * h..(i + 1) * h];
            match self {
                Cell::Simple(act) => {
                    for j in 0..h {
                        sv[j] = p[j] + r[j] + s.b_hh[j];
                    }
                    act.forward(sv, hn);
                }
                Cell::Lstm => {
                    let cp = &s.c_prev[i * h..(i + 1) * h];
                    let cn = &mut c_next[i * h..(i + 1) * h];
                    let pre = |k: usize, j: usize| p[k * h + j] + r[k * h + j] + s.b_hh[k * h + j];
                    for j in 0..h {
                        let (ig, fg, gg, og) = (sigmoid(pre(0, j)), sigmoid(pre(1, j)), tanh(pre(2, j)), sigmoid(pre(3, j)));
                        let c = fg * cp[j] + ig * gg;
                        let tc = tanh(c);
                        sv[j] = ig;
                        sv[h + j] = fg;
                        sv[2 * h + j] = gg;
                        sv[3 * h + j] = og;
                        sv[4 * h + j] = tc;
                        cn[j] = c;
                        hn[j] = og * tc;
                    }
                }
                Cell::Gru => {
                    let hp = &s.prev[i * h..(i + 1) * h];
                    for j in 0..h {
                        let rg = sigmoid(p[j] + r[j] + s.b_hh[j]);
                        let zg = sigmoid(p[h + j] + r[h + j] + s.b_hh[h + j]);
                        let hh = r[2 * h + j] + s.b_hh[2 * h + j];
                        let ng = tanh(p[2 * h + j] + rg * hh);
                        sv[j] = rg;
                        sv[h + j] = zg;
                        sv[2 * h + j] = ng;
                        sv[3 * h + j] = hh;
                        hn[j] = (1.0 - zg) * ng + zg * hp[j];
                    }
                }
            }
        }
    }

    /// One step back: the gradients w.r.t. the gate pre-activations (as the
    /// input projection sees them) into `d_gates` `[n, G·units]`; the part of
    /// `dh_{t-1}` that bypasses `W_hh` (GRU's `z·dh`) into `carry`; and
    /// (LSTM) `dc` replaced by the gradient w.r.t. `c_{t-1}`.
    pub fn backward_step(self, n: usize, b: &StepBack<'_>, dc: &mut [f32], d_gates: &mut [f32], carry: &mut [f32]) {
        let h = b.units;
        let gh = self.gates() * h;
        let sw = self.saved_width(h);
        for i in 0..n {
            let sv = &b.saved[i * sw..(i + 1) * sw];
            let dh = &b.dh[i * h..(i + 1) * h];
            let dg = &mut d_gates[i * gh..(i + 1) * gh];
            match self {
                Cell::Simple(act) => {
                    dg.copy_from_slice(dh);
                    act.backward(sv, &b.out[i * h..(i + 1) * h], dg);
                }
                Cell::Lstm => {
                    let cp = &b.c_prev[i * h..(i + 1) * h];
                    let dcr = &mut dc[i * h..(i + 1) * h];
                    for j in 0..h {
                        let (ig, fg, gg, og, tc) = (sv[j], sv[h + j], sv[2 * h + j], sv[3 * h + j], sv[4 * h + j]);
                        let dct = dcr[j] + dh[j] * og * (1.0 - tc * tc);
                        dg[j] = dct * gg * ig * (1.0 - ig);
                        dg[h + j] = dct * cp[j] * fg * (1.0 - fg);
                        dg[2 * h + j] = dct * ig * (1.0 - gg * gg);
                        dg[3 * h + j] = dh[j] * tc * og * (1.0 - og);
                        dcr[j] = dct * fg;
                    }
                }
                Cell::Gru => {
                    let hp = &b.prev[i * h..(i + 1) * h];
                    let cr = &mut carry[i * h..(i + 1) * h];
                    for j in 0..h {
                        let (rg, zg, ng, hh) = (sv[j], sv[h + j], sv[2 * h + j], sv[3 * h + j]);
                        let dn = dh[j] * (1.0 - zg) * (1.0 - ng * ng);
                        dg[j] = dn * hh * rg * (1.0 - rg);
                        dg[h + j] = dh[j] * (hp[j] - ng) * zg * (1.0 - zg);
                        dg[2 * h + j] = dn;
                        cr[j] = dh[j] * zg;
                    }
                }
            }
        }
    }

    /// GRU: turns the input-side gate gradients in `d_gates` into the
    /// recurrent side's, where the candidate's part is scaled by the reset
    /// gate (`n` sees `r_t·(W_hn·h + b_hn)`).
    pub fn gru_recurrent_part(n: usize, h: usize, saved: &[f32], d_gates: &mut [f32]) {
        let sw = Cell::Gru.saved_width(h);
        for i in 0..n {
            let rg = &saved[i * sw..i * sw + h];
            let dn = &mut d_gates[i * 3 * h + 2 * h..(i + 1) * 3 * h];
            dn.iter_mut().zip(rg).for_each(|(d, r)| *d *= r);
        }
    }
}
