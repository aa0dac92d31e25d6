//! uma's compute kernels: the ggml block formats, the matrix products and the thread pool.
//!
//! This crate owns, for every ggml type uma computes with (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q8_1, Q2_K … Q6_K, Q8_K, MXFP4):
//! - the block layout, as a `#[repr(C)]` [`bytemuck::Pod`] struct byte-for-byte equal to ggml's
//!   `ggml-common.h`, and a zero-copy view of tensor bytes as blocks ([`bytes`]);
//! - a scalar reference dequantizer, bit-identical to ggml's `dequantize_row_*` (and so to the
//!   `gguf` Python package), checked against golden digests of real models;
//! - scalar reference quantizers (ggml's `quantize_row_*_ref`, with ggml's own rounding) for
//!   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q4_K, Q6_K, Q8_K and MXFP4;
//! - scalar reference dot products of each weight type with its activation type, as ggml pairs
//!   them ([`vec_dot_type`]);
//! - matrix products: [`packed`] (Q4_0, Q5_0, Q8_0, Q4_1, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
//!   Q8_K, MXFP4, F32, F16 and BF16 repacked into interleaved row groups, with AVX2, AVX-512 VNNI and
//!   NEON kernels chosen once from CPU features, bit-identical to the scalar reference for the
//!   quantized types, within a stated rounding bound for the floats) and [`matmul`] (any type,
//!   straight from the mapped blocks, for what the packed layout cannot take);
//! - the persistent [`ThreadPool`] every parallel operation runs on.
//!
//! It does not own tensor files (that is `uma-gguf`, whose [`GgmlType`](uma_gguf::GgmlType) it
//! uses) or model code.
//!
//! Only little-endian targets are supported: GGUF blocks are little-endian and are viewed in
//! place.
#![deny(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("uma-kernels views little-endian GGUF blocks in place; big-endian is unsupported");

pub mod bytes;
pub mod cpu;
pub mod dispatch;
pub mod error;
pub mod formats;
pub mod matmul;
pub mod memory;
pub mod packed;
mod parallel;
pub mod rounding;
pub mod thread_pool;
pub mod vector;

pub use cpu::CpuFeatures;
pub use dispatch::{can_dequantize, can_quantize, dequantize, quantize, vec_dot, vec_dot_type};
pub use error::{KernelError, Result};
pub use formats::mxfp4::BlockMXFP4;
pub use formats::q2_k::BlockQ2_K;
pub use formats::q3_k::BlockQ3_K;
pub use formats::q4_0::BlockQ4_0;
pub use formats::q4_1::BlockQ4_1;
pub use formats::q4_k::BlockQ4_K;
pub use formats::q5_0::BlockQ5_0;
pub use formats::q5_1::BlockQ5_1;
pub use formats::q5_k::BlockQ5_K;
pub use formats::q6_k::BlockQ6_K;
pub use formats::q8_0::BlockQ8_0;
pub use formats::q8_1::BlockQ8_1;
pub use formats::q8_k::BlockQ8_K;
pub use formats::{Block, Quantize, VecDot, QK, QK_K};
pub use matmul::{matmul, matmul_f32, QuantizedActivations, WeightMatrix};
pub use packed::{
    matmul_each, matmul_many, ActivationFormat, Isa, PackedActivations, PackedFormat, PackedMatrix,
    Product, ProductOf,
};
pub use thread_pool::{physical_cores, ThreadPool};
