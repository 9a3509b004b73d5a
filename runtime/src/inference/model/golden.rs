//! The golden inputs: fixed tensors, rebuilt from a formula rather than stored, that the loader's
//! self-test runs a model on and compares with the manifest's golden output.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Writes the manifest's golden input `kind` for `spec` into `out`.
///
/// `ramp-v1`: element `(n, a, b, c)` of the input tensor (in its own layout) is
/// `((a * 7 + b * 13 + c * 29) mod 251) - 125`, an image-like pattern across the value range that
/// is exact in `f32` and easy to rebuild in any language (models/prepare.py and
/// models/nsfwjs/reference.mjs do). `ramp-unit-v1` is the same pattern in `[0, 1]`:
/// `((a * 7 + b * 13 + c * 29) mod 251) / 250`, the correctly rounded `f32` quotient, for models
/// fed pixels scaled to one (on ramp-v1's range they saturate, and a golden output that is all one
/// class checks little).
pub fn golden_input(kind: &str, spec: &crate::manifest::InputSpec, out: &mut [f32]) -> Result<()> {
    let value: fn(usize) -> f32 = match kind {
        "ramp-v1" => |k| k as f32 - 125.0,
        "ramp-unit-v1" => |k| k as f32 / 250.0,
        _ => {
            return Err(Error::Manifest {
                path: PathBuf::from("model.toml"),
                reason: format!("unknown golden input {kind:?}"),
            })
        }
    };
    let [_, d1, d2, d3] = spec.shape();
    let mut i = 0;
    for a in 0..d1 {
        for b in 0..d2 {
            for c in 0..d3 {
                out[i] = value((a * 7 + b * 13 + c * 29) % 251);
                i += 1;
            }
        }
    }
    Ok(())
}
