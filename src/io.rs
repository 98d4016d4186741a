//! Model files: safetensors with the architecture and optimizer settings as JSON
//! in the header metadata. Plain tensors and JSON, so loading a file never runs
//! code (no pickle). Writes go to a temporary file that is renamed into place, so
//! an interrupted save leaves the old file intact.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{try_grow, Error, Result};
use crate::kernels::reduce::all_finite;
use crate::network::{Network, NetworkSpec};

const FORMAT: &str = "ferronn";
const FORMAT_VERSION: &str = "1";
const OPTIM_PREFIX: &str = "optimizer.";

fn to_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn format_err(what: impl std::fmt::Display) -> Error {
    Error::Format(format!("not a valid ferronn model file: {what}"))
}

/// Serialises the network (parameters, optimizer state, architecture) and the
/// caller's `extra` string (the Python layer stores its own settings there).
///
/// # Errors
/// `Error::Format` if serialisation fails (it should not for valid networks).
pub fn to_bytes(net: &Network, extra: &str) -> Result<Vec<u8>> {
    // A diverged model would be written but refused by `from_bytes`; say so now.
    if !all_finite(net.params()) || !all_finite(net.buffers()) {
        return Err(Error::NonFinite("the weights contain NaN or infinity (training diverged); refusing to save them".into()));
    }
    // `from_bytes` refuses non-finite optimizer state too: save and load agree.
    if net.optimizer().state().iter().any(|(_, b)| !all_finite(b)) {
        return Err(Error::NonFinite("the optimizer state contains NaN or infinity; refusing to save it".into()));
    }
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (info, trainable) in net.tensor_infos() {
        let source = if trainable { net.params() } else { net.buffers() };
        tensors.push((info.name.clone(), info.shape.clone(), to_le_bytes(&source[info.range()])));
    }
    for (name, buf) in net.optimizer().state() {
        tensors.push((format!("{OPTIM_PREFIX}{name}"), vec![buf.len()], to_le_bytes(buf)));
    }
    let spec = serde_json::to_string(net.spec()).map_err(|e| Error::Format(format!("could not encode the architecture: {e}")))?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("spec".to_string(), spec),
        ("optimizer_steps".to_string(), net.optimizer().steps().to_string()),
        ("extra".to_string(), extra.to_string()),
    ]);
    let views = tensors
        .iter()
        .map(|(n, s, d)| TensorView::new(Dtype::F32, s.clone(), d).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Format(format!("could not encode a tensor: {e}")))?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Format(format!("could not encode the model: {e}")))
}

/// Rebuilds a network and the `extra` string from bytes made by [`to_bytes`].
///
/// # Errors
/// `Error::Format` for anything that is not an intact ferronn model file:
/// truncation, a foreign safetensors file, missing or misshapen tensors,
/// non-finite weights.
pub fn from_bytes(bytes: &[u8]) -> Result<(Network, String)> {
    let st = SafeTensors::deserialize(bytes).map_err(format_err)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format_err)?;
    let meta = header.metadata().as_ref().ok_or_else(|| format_err("the header has no metadata"))?;
    let get = |k: &str| meta.get(k).ok_or_else(|| format_err(format!("metadata key '{k}' is missing")));
    if get("format")? != FORMAT {
        return Err(format_err("the metadata does not say format=ferronn"));
    }
    if get("format_version")? != FORMAT_VERSION {
        return Err(format_err(format!("format version {} is not supported (this build reads {FORMAT_VERSION})", get("format_version")?)));
    }
    let spec: NetworkSpec = serde_json::from_str(get("spec")?).map_err(|e| format_err(format!("bad architecture JSON: {e}")))?;
    let steps: u64 = get("optimizer_steps")?.parse().map_err(|_| format_err("optimizer_steps is not a number"))?;
    // The architecture is checked against the tensors the file holds before
    // anything it sizes is reserved: a spec may claim any size, the tensors
    // are what the file really carries.
    let mut found = Vec::new();
    let check = |infos: &[(crate::layers::ParamInfo, bool)]| {
        for (info, _) in infos {
            let name = &info.name;
            let t = st.tensor(name).map_err(|_| format_err(format!("tensor '{name}' is missing")))?;
            if t.dtype() != Dtype::F32 || t.shape() != info.shape.as_slice() {
                return Err(format_err(format!("tensor '{name}' is {:?} {:?}, expected F32 {:?}", t.dtype(), t.shape(), info.shape)));
            }
            found.push((name.clone(), t));
        }
        Ok(())
    };
    let mut net = Network::new_checked(spec, check).map_err(|e| match e {
        Error::Format(_) => e,
        e => format_err(format!("its architecture is invalid: {e}")),
    })?;
    for (name, t) in found {
        net.set_param(&name, &from_le_bytes(t.data())).map_err(format_err)?;
    }
    let non_negative = net.optimizer().config().non_negative_states();
    let mut state = Vec::new();
    for (name, t) in st.tensors() {
        if let Some(short) = name.strip_prefix(OPTIM_PREFIX) {
            if t.dtype() != Dtype::F32 {
                return Err(format_err(format!("optimizer tensor '{name}' is not F32")));
            }
            let values = from_le_bytes(t.data());
            // NaN state, or a negative second moment, would poison every later step.
            let second_moment = short.ends_with("_sq") || non_negative.contains(&short);
            if !all_finite(&values) || (second_moment && values.iter().any(|&v| v < 0.0)) {
                return Err(format_err(format!("optimizer tensor '{name}' holds NaN, infinity or negative second moments")));
            }
            state.push((short.to_string(), values));
        }
    }
    if !state.is_empty() || steps > 0 {
        let n = net.params().len();
        net.optimizer_mut().load_state(steps, &state, n).map_err(format_err)?;
    }
    Ok((net, get("extra")?.clone()))
}

/// Reads a model file (the bytes of [`to_bytes`], which the Python package
/// writes with its one atomic-write helper, `ferronn._files.atomic_write`).
///
/// # Errors
/// `Error::Io` when the file cannot be read, `Error::Format` when it is not an
/// intact ferronn model file (or not a regular file at all).
pub fn load(path: &Path) -> Result<(Network, String)> {
    from_bytes(&read_bounded(path)?)
}

/// The most header bytes a model file may have (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// The bytes of the regular file at `path`, read no further than the length
/// it had when opened: `/dev/zero` would otherwise be read without end, and a
/// FIFO would block. The header length is checked against the file's length
/// before anything is reserved for it.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let not_regular = || format_err(format!("'{}' is not a regular file", path.display()));
    // stat before opening: opening a FIFO blocks until a writer comes.
    if !fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let mut f = fs::File::open(path)?;
    let meta = f.metadata()?; // the file opened, which may not be the one stat'ed
    if !meta.is_file() {
        return Err(not_regular());
    }
    let len = meta.len();
    let mut head = [0u8; 8];
    if len < 8 {
        return Err(format_err(format!("the file has {len} bytes, too few for a safetensors header")));
    }
    f.read_exact(&mut head)?;
    let header = u64::from_le_bytes(head);
    if header > MAX_HEADER || header > len - 8 {
        return Err(format_err(format!("the header claims {header} bytes but the file has {len}")));
    }
    let len = usize::try_from(len).map_err(|_| Error::Memory(format!("cannot read a model file of {len} bytes")))?;
    let mut bytes = Vec::new();
    try_grow(&mut bytes, len, "the model file")?;
    bytes.extend_from_slice(&head);
    f.take(len as u64 - 8).read_to_end(&mut bytes)?;
    Ok(bytes)
}
