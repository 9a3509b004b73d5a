//! Inference: the model file to class probabilities.
//!
//! [`model`] loads a classifier (checksum, IO contract, golden self-test) and runs it per worker;
//! `rewrite` changes tract's graph before it optimises (fused quantize/dequantize pairs, integer
//! convolutions); `qconv` holds the integer and depthwise kernels the rewrite puts in.

pub mod model;
pub(crate) mod qconv;
mod rewrite;
