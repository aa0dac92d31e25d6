//! Matrix products per weight format, GEMV (1 token, decode) and GEMM (64 tokens, prefill), on
//! every kernel path this CPU has. Throughput is weight bytes per second, so GEMV numbers
//! compare directly with the machine's memory bandwidth. The matrices (≥ 37 MB) exceed the
//! last-level cache, as a model's weights do. The formats packed last (Q5_K, Q8_K, F32, F16,
//! BF16, Q4_1, Q5_1, Q3_K, Q2_K, MXFP4) also run the row path (`row-path`, 1 token; 64 would
//! take seconds per iteration), for comparison.
//!
//!   cargo bench -p uma-kernels --bench matmul [-- FILTER]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uma_gguf::GgmlType;
use uma_kernels::{
    Isa, PackedActivations, PackedFormat, PackedMatrix, QuantizedActivations, WeightMatrix,
};

const NUM_ROWS: usize = 8192;
const ROW_LENGTH: usize = 8192;

fn values(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic spread of values; the speed does not depend on them.
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5
        })
        .collect()
}

/// `NUM_ROWS × ROW_LENGTH` weights of `ty`: quantized values, or for a type without a
/// quantizer (Q5_K, Q3_K, Q2_K) pseudo-random quants under small finite f16 scales.
fn weights(ty: GgmlType) -> Vec<u8> {
    let n = NUM_ROWS * ROW_LENGTH;
    let mut bytes = vec![0u8; ty.bytes_for(n as u64).expect("fits") as usize];
    if uma_kernels::can_quantize(ty) {
        uma_kernels::quantize(ty, &values(n, 1), &mut bytes).expect("quantize");
        return bytes;
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for b in bytes.iter_mut() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *b = (state >> 56) as u8;
    }
    // Where each block keeps its f16 super-block scales (d, and dmin where it has one).
    let scales: &[usize] = match ty {
        GgmlType::Q5_K => &[0, 2],
        GgmlType::Q3_K => &[108],
        GgmlType::Q2_K => &[80, 82],
        _ => panic!("{ty} has a quantizer"),
    };
    for block in bytes.chunks_exact_mut(ty.type_size()) {
        for &at in scales {
            block[at..at + 2].copy_from_slice(&[0x00, 0x20]); // 2⁻⁷ as f16
        }
    }
    bytes
}

fn bench_format(c: &mut Criterion, ty: GgmlType) {
    let format = PackedFormat::of(ty).expect("packed format");
    let bytes = weights(ty);
    let packed = PackedMatrix::pack(format, &bytes, NUM_ROWS, ROW_LENGTH).expect("pack");
    let mut group = c.benchmark_group(format!("matmul/{ty}"));
    group.throughput(Throughput::Bytes(packed.size_in_bytes() as u64));
    group.sample_size(20);
    use GgmlType::*;
    if matches!(ty, Q5_K | Q8_K | F32 | F16 | BF16 | Q4_1 | Q5_1 | Q3_K | Q2_K | MXFP4) {
        let w = WeightMatrix::new(ty, &bytes, NUM_ROWS, ROW_LENGTH).expect("weights");
        let mut acts = QuantizedActivations::new();
        acts.quantize_for(ty, &values(ROW_LENGTH, 2), ROW_LENGTH).expect("quantize");
        let mut out = vec![0.0f32; NUM_ROWS];
        group.bench_function(BenchmarkId::new("row-path", "1 tokens"), |b| {
            b.iter(|| uma_kernels::matmul(&w, black_box(&acts), &mut out).expect("matmul"))
        });
    }
    drop(bytes);
    for num_tokens in [1usize, 64] {
        let x = values(num_tokens * ROW_LENGTH, 2);
        let mut acts = PackedActivations::new();
        acts.quantize(format.activation_format(), &x, ROW_LENGTH).expect("quantize");
        let mut out = vec![0.0f32; num_tokens * NUM_ROWS];
        for isa in Isa::available() {
            if isa == Isa::Scalar {
                continue; // the reference: minutes per sample at this size
            }
            let id = BenchmarkId::new(isa.name(), format!("{num_tokens} tokens"));
            group.bench_function(id, |b| {
                b.iter(|| packed.matmul_with(isa, black_box(&acts), &mut out).expect("matmul"))
            });
        }
    }
    group.finish();
}

fn matmul(c: &mut Criterion) {
    use GgmlType::*;
    for ty in
        [Q4_K, Q5_0, Q6_K, Q8_0, Q4_0, Q5_K, Q8_K, F16, BF16, F32, Q4_1, Q5_1, Q3_K, Q2_K, MXFP4]
    {
        bench_format(c, ty);
    }
}

criterion_group!(benches, matmul);
criterion_main!(benches);
