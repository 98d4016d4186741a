//! Moving the helper thread off the caller's CPU when the scheduler put it there.
//!
//! The helper of [`crate::handoff`] parks when idle. Woken again, it can land
//! on the CPU of the thread that woke it and stay there, queued behind that
//! thread, while the other CPU idles: measured on the 2-core VM, 100-call
//! blocks of a batch-32 `predict` after 0.25 s of idle cores ran at one
//! core's speed (138 µs instead of 71) in 3 to 12 blocks of 12, with the
//! helper on the caller's CPU and 11.6 ms of its 12 ms block waiting in the
//! run queue (`/proc/self/task/*/schedstat`). A virtual machine's idle CPU
//! whose host has descheduled it does not look idle to the wake-up placement,
//! which is the likeliest reason the kernel leaves it there.
//!
//! [`leave_cpu`] moves the calling thread to another CPU it may run on, by
//! narrowing its allowed set for one call and restoring the set exactly as it
//! was: the thread ends where the kernel moved it, and a user's own affinity
//! (taskset, cgroups) still holds. It is a hint: every failure is ignored.
//! Outside Linux it does nothing.

/// The CPU the calling thread runs on, when the OS says (Linux).
pub(crate) fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and only returns a number.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The calling thread's id, for [`move_off`] from another thread (Linux).
pub(crate) fn thread_id() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid takes no arguments and only returns a number.
        Some(unsafe { libc::gettid() })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Moves thread `tid` of this process off `cpu` as [`leave_cpu`] does for
/// the calling one: a thread queued behind another on `cpu` is moved at once.
pub(crate) fn move_off(tid: i32, cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        tid > 0 && linux::while_off(tid, cpu, || ()).is_some()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (tid, cpu);
        false
    }
}

/// Moves the calling thread off `cpu` if its allowed set has another CPU,
/// leaving the allowed set as it found it. Returns whether it narrowed the
/// set (the kernel moves a thread off a CPU it may no longer use before the
/// call returns).
pub(crate) fn leave_cpu(cpu: usize) -> bool {
    while_off(cpu, || ()).is_some()
}

/// Runs `f` with the calling thread kept off `cpu`, then restores its allowed
/// set; `None` (and `f` not run) when the set has no other CPU or the OS
/// refused.
fn while_off<R>(cpu: usize, f: impl FnOnce() -> R) -> Option<R> {
    #[cfg(target_os = "linux")]
    {
        linux::while_off(0, cpu, f)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (cpu, f);
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::mem::{size_of, zeroed};

    /// `tid` 0: the calling thread.
    pub(super) fn while_off<R>(tid: libc::pid_t, cpu: usize, f: impl FnOnce() -> R) -> Option<R> {
        // SAFETY: cpu_set_t is plain data (a bit array); all-zero is the empty set.
        let mut allowed: libc::cpu_set_t = unsafe { zeroed() };
        // SAFETY: a thread id of this process (0: the calling thread); the size is that of the set passed.
        if unsafe { libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut allowed) } != 0 {
            return None;
        }
        let bits = 8 * size_of::<libc::cpu_set_t>();
        // SAFETY: CPU_ISSET/CPU_CLR/CPU_COUNT only read and write bits below `bits`.
        if cpu >= bits || !unsafe { libc::CPU_ISSET(cpu, &allowed) } || unsafe { libc::CPU_COUNT(&allowed) } < 2 {
            return None;
        }
        let mut others = allowed;
        // SAFETY: as above.
        unsafe { libc::CPU_CLR(cpu, &mut others) };
        // SAFETY: as above. The first call moves the thread off `cpu` before
        // it returns; the second gives back the allowed set unchanged.
        if unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &others) } != 0 {
            return None;
        }
        let result = f();
        // SAFETY: as above.
        unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &allowed) };
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's allowed CPUs (the first 1024), Linux only.
    #[cfg(target_os = "linux")]
    fn allowed() -> Vec<bool> {
        // SAFETY: as in `linux::while_off`.
        let mut s: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut s) }, 0);
        (0..8 * std::mem::size_of::<libc::cpu_set_t>()).map(|c| unsafe { libc::CPU_ISSET(c, &s) }).collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn off_a_cpu_the_thread_runs_elsewhere_and_its_allowed_set_comes_back() {
        std::thread::spawn(|| {
            let cpu = current_cpu().expect("Linux reports the current CPU");
            let before = allowed();
            let others = before.iter().filter(|&&a| a).count() - 1;
            let inside = while_off(cpu, || (current_cpu(), allowed()));
            assert_eq!(allowed(), before, "the allowed set was not restored");
            match inside {
                Some((now, narrowed)) => {
                    assert!(others >= 1, "narrowed with no other CPU allowed");
                    assert_ne!(now, Some(cpu), "still on CPU {cpu} while it was excluded");
                    assert!(!narrowed[cpu], "CPU {cpu} still allowed inside");
                }
                None => assert_eq!(others, 0, "refused although {others} other CPUs are allowed"),
            }
            assert_eq!(leave_cpu(cpu), others >= 1);
            assert_eq!(allowed(), before);
            // A CPU past the set's size: nothing to do.
            assert!(!leave_cpu(usize::MAX));
        })
        .join()
        .unwrap();
    }
}
