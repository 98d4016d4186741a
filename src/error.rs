//! One error type for the whole core. Each variant maps to its own Python
//! exception in `src/python/errors.rs`, so the message must read well on its own:
//! say what was wrong and what was expected.

/// Everything the core can reject.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An array has the wrong shape (rows, columns, or length).
    #[error("{0}")]
    Shape(String),
    /// An input or target holds NaN or infinity.
    #[error("{0}")]
    NonFinite(String),
    /// A class label is outside `0..n_classes`.
    #[error("{0}")]
    Label(String),
    /// An array with no rows where at least one is needed.
    #[error("{0}")]
    Empty(String),
    /// A name (activation, loss, initialiser, optimizer) that ferronn does not know.
    #[error("{0}")]
    UnknownName(String),
    /// A hyperparameter out of its valid range, or an inconsistent configuration.
    #[error("{0}")]
    Config(String),
    /// A model file that is corrupt, truncated, or not a ferronn file.
    #[error("{0}")]
    Format(String),
    /// An operating-system error while reading or writing a file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Memory for a buffer could not be reserved (the size came from a user's
    /// argument, an input or a file). Never an abort: allocations whose size
    /// the user controls go through [`try_vec`] / `Matrix::try_zeros`.
    #[error("{0}")]
    Memory(String),
}

/// `n` copies of `value`, reserved fallibly: `Error::Memory` naming `what` and the
/// size asked for instead of the process abort a failed `vec![]` would be.
///
/// # Errors
/// `Error::Memory` when the allocator refuses (or the byte size overflows).
pub fn try_vec<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_grow(&mut v, n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// Makes room in `v` for `len` values in all (amortised, like `Vec::resize`),
/// fallibly: a workspace that grows with a user's batch size reserves here.
///
/// # Errors
/// `Error::Memory` naming `what` and the size asked for.
pub fn try_grow<T>(v: &mut Vec<T>, len: usize, what: &str) -> Result<()> {
    let extra = len.saturating_sub(v.len());
    v.try_reserve(extra).map_err(|_| {
        let bytes = (len as u128) * (std::mem::size_of::<T>() as u128);
        Error::Memory(format!("cannot allocate {what}: {len} values ({bytes} bytes) asked for"))
    })
}

/// Makes `dst` a copy of `src`, reusing its memory and reserving fallibly.
///
/// # Errors
/// `Error::Memory` naming `what` when `dst` must grow and cannot; `dst` is then unchanged.
pub fn try_copy<T: Clone>(dst: &mut Vec<T>, src: &[T], what: &str) -> Result<()> {
    try_grow(dst, src.len(), what)?;
    dst.clear();
    dst.extend_from_slice(src);
    Ok(())
}

/// `a * b` for sizes, or `Error::Config` naming `what` when it overflows `usize`.
///
/// # Errors
/// `Error::Config` on overflow.
pub fn checked_size(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::Config(format!("{what} is too large: {a} x {b} overflows the address space")))
}

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns `Error::Shape` unless `cond` holds; the message is built lazily.
pub(crate) fn ensure_shape(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::Shape(msg()))
    }
}

/// Returns `Error::Config` unless `cond` holds; the message is built lazily.
pub(crate) fn ensure_config(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::Config(msg()))
    }
}

/// `Error::UnknownName` for a `what` called `name`, listing the `known` names
/// with their aliases in parentheses: "unknown loss 'hinge'; expected one of:
/// cross_entropy (categorical_crossentropy), mse, ...". The Python package
/// formats its own lookups' errors the same way (`python/ferronn/names.py`),
/// so a name fails with one message wherever it is first checked.
pub(crate) fn unknown_name<'a>(what: &str, name: &str, known: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Error {
    let listed: Vec<String> = known
        .into_iter()
        .map(|(n, aliases)| if aliases.is_empty() { n.to_string() } else { format!("{n} ({})", aliases.join(", ")) })
        .collect();
    Error::UnknownName(format!("unknown {what} '{name}'; expected one of: {}", listed.join(", ")))
}
