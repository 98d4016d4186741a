//! Unit tests of [`Schedule`](super::Schedule): each kind's formula, defaults,
//! JSON round trips and the error messages for invalid specs.

use super::kind::restart_position;
use super::*;

fn sched(json: &str) -> Schedule {
    Schedule::from_json(json).unwrap()
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1e-12)
}

#[track_caller]
fn check(s: &Schedule, want: &[(u64, f64)]) {
    for &(t, w) in want {
        let got = if s.per_step() {
            s.lr_at(t, 999)
        } else {
            s.lr_at(999, t)
        };
        assert!(
            close(got, w),
            "{} at t={t}: got {got}, want {w}",
            s.kind.name()
        );
    }
}

#[test]
fn constant() {
    check(
        &sched(r#"{"name":"constant","lr":0.5}"#),
        &[(0, 0.5), (1000, 0.5)],
    );
}

#[test]
fn step_decay() {
    let s = sched(r#"{"name":"step","lr":1.0,"step_size":3,"gamma":0.5}"#);
    check(
        &s,
        &[
            (0, 1.0),
            (2, 1.0),
            (3, 0.5),
            (5, 0.5),
            (6, 0.25),
            (9, 0.125),
        ],
    );
    // gamma defaults to 0.1
    let s = sched(r#"{"name":"step","lr":1.0,"step_size":2}"#);
    check(&s, &[(1, 1.0), (2, 0.1), (4, 0.01)]);
}

#[test]
fn multistep() {
    let s = sched(r#"{"name":"multistep","lr":1.0,"milestones":[2,5],"gamma":0.5}"#);
    check(
        &s,
        &[
            (0, 1.0),
            (1, 1.0),
            (2, 0.5),
            (4, 0.5),
            (5, 0.25),
            (100, 0.25),
        ],
    );
    let s = sched(r#"{"name":"multistep","lr":1.0,"milestones":[]}"#);
    check(&s, &[(0, 1.0), (100, 1.0)]);
}

#[test]
fn exponential() {
    let s = sched(r#"{"name":"exponential","lr":2.0,"gamma":0.5}"#);
    check(&s, &[(0, 2.0), (1, 1.0), (3, 0.25)]);
}

#[test]
fn cosine_holds_at_eta_min_after_t_max() {
    let s = sched(r#"{"name":"cosine","lr":1.0,"t_max":4,"eta_min":0.2}"#);
    // eta_min + 0.8 * (1 + cos(pi t / 4)) / 2
    let half = std::f64::consts::FRAC_1_SQRT_2;
    check(
        &s,
        &[
            (0, 1.0),
            (1, 0.2 + 0.4 * (1.0 + half)),
            (2, 0.6),
            (3, 0.2 + 0.4 * (1.0 - half)),
            (4, 0.2),
            (5, 0.2),
            (8, 0.2),
        ],
    );
    assert!(!s.per_step());
}

#[test]
fn cosine_restarts_t_mult_1_and_2() {
    let s = sched(r#"{"name":"cosine_restarts","lr":1.0,"t_0":2}"#);
    // T_i = 2: t=0 -> 1, t=1 -> 0.5, t=2 restart -> 1
    check(&s, &[(0, 1.0), (1, 0.5), (2, 1.0), (3, 0.5), (4, 1.0)]);
    let s = sched(r#"{"name":"cosine_restarts","lr":1.0,"t_0":2,"t_mult":2}"#);
    // Cycles [0,2), [2,6), [6,14): (T_cur, T_i) at t=3 is (1,4): (1+cos(pi/4))/2
    let q = (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0;
    check(
        &s,
        &[
            (0, 1.0),
            (1, 0.5),
            (2, 1.0),
            (3, q),
            (4, 0.5),
            (5, 1.0 - q),
            (6, 1.0),
            (10, 0.5),
            (14, 1.0),
        ],
    );
    // Huge t with growing cycles neither overflows nor loops forever.
    let (t_cur, t_i) = restart_position(u64::MAX, 1, 3);
    assert!(t_cur < t_i);
}

#[test]
fn warmup_cosine() {
    let s = sched(r#"{"name":"warmup_cosine","lr":1.0,"warmup":4,"total":8,"eta_min":0.0}"#);
    assert!(s.per_step());
    check(
        &s,
        &[
            (0, 0.25),
            (1, 0.5),
            (3, 1.0),
            (4, 1.0),
            (6, 0.5),
            (8, 0.0),
            (9, 0.0),
        ],
    );
    let s = sched(r#"{"name":"warmup_cosine","lr":1.0,"warmup":0,"total":2}"#);
    check(&s, &[(0, 1.0), (1, 0.5), (2, 0.0)]);
}

#[test]
fn one_cycle_two_phase() {
    // total 10, pct 0.3: phase 1 ends at step 2 (0.3*10 - 1), phase 2 at 9.
    let s = sched(r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10}"#);
    assert!(s.per_step());
    let init = 1.0 / 25.0;
    let min = init / 1e4;
    let cos = |a: f64, b: f64, p: f64| b + (a - b) / 2.0 * ((std::f64::consts::PI * p).cos() + 1.0);
    check(
        &s,
        &[
            (0, init),
            (1, cos(init, 1.0, 0.5)),
            (2, 1.0),
            (5, cos(1.0, min, 3.0 / 7.0)),
            (9, min),
            (10, min),
            (50, min),
        ],
    );
    let s = sched(
        r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10,"anneal":"linear","div_factor":10,"final_div_factor":10}"#,
    );
    check(&s, &[(0, 0.1), (1, 0.55), (2, 1.0), (9, 0.01)]);
}

#[test]
fn one_cycle_three_phase() {
    // total 10, pct 0.25: ends at 1.5, 3.0, 9.
    let s = sched(
        r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10,"pct_start":0.25,"anneal":"linear","div_factor":10,"final_div_factor":10,"three_phase":true}"#,
    );
    // t=1: phase 1, pct 1/1.5; t=2: phase 2 from 1.5 to 3, pct 1/3;
    // t=3: initial; t=6: phase 3, pct 3/6.
    check(
        &s,
        &[
            (0, 0.1),
            (1, 0.1 + 0.9 / 1.5),
            (2, 1.0 - 0.9 / 3.0),
            (3, 0.1),
            (6, 0.1 + (0.01 - 0.1) * 0.5),
            (9, 0.01),
        ],
    );
}

#[test]
fn polynomial() {
    let s = sched(r#"{"name":"polynomial","lr":1.0,"total_iters":4,"power":2.0}"#);
    check(&s, &[(0, 1.0), (1, 0.5625), (2, 0.25), (4, 0.0), (10, 0.0)]);
    let s = sched(r#"{"name":"polynomial","lr":1.0,"total_iters":4}"#);
    check(&s, &[(1, 0.75), (3, 0.25)]);
}

#[test]
fn per_override_and_counter_choice() {
    let s = sched(r#"{"name":"step","lr":1.0,"step_size":1,"gamma":0.5,"per":"step"}"#);
    assert!(s.per_step());
    assert_eq!(s.lr_at(2, 0), 0.25);
    let s = sched(r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10,"per":"epoch"}"#);
    assert!(!s.per_step());
    assert_eq!(s.lr_at(5, 2), 1.0);
}

#[test]
fn round_trip_fills_defaults() {
    let s = sched(r#"{"name":"cosine","lr":0.1,"t_max":100}"#);
    assert_eq!(
        s.to_json(),
        r#"{"name":"cosine","lr":0.1,"t_max":100,"eta_min":0.0,"per":"epoch"}"#
    );
    for json in [
        r#"{"name":"one_cycle","max_lr":0.1,"total_steps":1000}"#,
        r#"{"name":"multistep","lr":0.1,"milestones":[3,7],"per":"step"}"#,
        r#"{"name":"cosine_restarts","lr":0.1,"t_0":3,"t_mult":2}"#,
    ] {
        let s = sched(json);
        assert_eq!(sched(&s.to_json()), s);
    }
}

#[test]
fn rejects_nonsense() {
    let config = |json: &str| match Schedule::from_json(json) {
        Err(Error::Config(msg)) => msg,
        other => panic!("{json}: expected a Config error, got {other:?}"),
    };
    for (json, needle) in [
        (r#"{"name":"constant","lr":-1}"#, "lr must be finite and >= 0"),
        (r#"{"name":"cosine","lr":0.1,"t_max":0}"#, "t_max must be >= 1"),
        (r#"{"name":"step","lr":0.1,"step_size":0}"#, "step_size must be >= 1"),
        (r#"{"name":"step","lr":0.1,"step_size":2,"gamma":0}"#, "gamma must be finite and > 0"),
        (r#"{"name":"exponential","lr":0.1,"gamma":-0.5}"#, "gamma must be finite and > 0"),
        (r#"{"name":"multistep","lr":0.1,"milestones":[5,2]}"#, "strictly increasing"),
        (r#"{"name":"multistep","lr":0.1,"milestones":[2,2]}"#, "strictly increasing"),
        (r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"pct_start":0}"#, "pct_start must be in (0, 1)"),
        (r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"pct_start":1.0}"#, "pct_start must be in (0, 1)"),
        (r#"{"name":"one_cycle","max_lr":0.1,"total_steps":3}"#, "pct_start * total_steps must be > 1"),
        (r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"pct_start":0.6,"three_phase":true}"#, "pct_start <= 0.5"),
        (r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"div_factor":0}"#, "div_factor must be finite and > 0"),
        (r#"{"name":"warmup_cosine","lr":0.1,"warmup":10,"total":10}"#, "total must be > warmup"),
        (r#"{"name":"cosine_restarts","lr":0.1,"t_0":0}"#, "t_0 must be >= 1"),
        (r#"{"name":"cosine_restarts","lr":0.1,"t_0":1,"t_mult":0}"#, "t_mult must be >= 1"),
        (r#"{"name":"polynomial","lr":0.1,"total_iters":0}"#, "total_iters must be >= 1"),
        (r#"{"name":"polynomial","lr":0.1,"total_iters":5,"power":-1}"#, "power must be finite and >= 0"),
        (r#"{"name":"cosine","lr":0.1,"t_max":5,"eta_min":-0.1}"#, "eta_min must be finite and >= 0"),
        // Structural errors.
        (r#"{"name":"cosine","lr":0.1}"#, "missing field `t_max`"),
        (r#"{"name":"cosine","lr":0.1,"t_max":5,"tmax":5}"#, "unknown field `tmax`"),
        (r#"{"name":"cosine","lr":0.1,"t_max":5,"per":"batch"}"#, "per: unknown variant `batch`"),
        (r#"{"name":"cosine","lr":0.1,"t_max":2.5}"#, "t_max must be a non-negative integer, got 2.5"),
        (r#"{"name":"cosine","lr":0.1,"t_max":-3}"#, "t_max must be a non-negative integer, got -3"),
        (r#"{"name":"multistep","lr":0.1,"milestones":[1,-3]}"#, "milestones must be a list of non-negative integers"),
        (r#"{"name":"constant","lr":"big"}"#, "invalid type: string"),
        (r#"{"lr":0.1}"#, "no \"name\""),
        (r#"[1]"#, "must be a JSON object"),
        (r#"{"name":"#, "invalid schedule spec"),
    ] {
        let msg = config(json);
        assert!(msg.contains(needle), "{json}: {msg:?} lacks {needle:?}");
    }
    assert!(matches!(
        Schedule::from_json(r#"{"name":"linear","lr":0.1}"#),
        Err(Error::UnknownName(_))
    ));
}
