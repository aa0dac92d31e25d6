//! What the kernel tests share: one backend per test binary (or none, said loudly, unless
//! [`REQUIRE_GPU_VARIABLE`] makes a missing GPU a failure), and passes over host data.

use std::sync::OnceLock;

use uma_ids::BlockId;
use uma_model::backend::{Backend, BatchLayout};
use uma_model::{Batch, LogitsRequest};

use crate::backend::{GpuActivations, GpuBackend, GpuPass};
use crate::context::REQUIRE_GPU_VARIABLE;

/// The test binary's backend, or `None` (printed) when the machine has no GPU and none is
/// required.
pub(crate) fn backend() -> Option<&'static GpuBackend> {
    static BACKEND: OnceLock<Option<GpuBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| match GpuBackend::open() {
            Ok(backend) => Some(backend),
            Err(error) => {
                let required = std::env::var_os(REQUIRE_GPU_VARIABLE).is_some_and(|v| v != "0");
                assert!(!required, "{REQUIRE_GPU_VARIABLE} is set and no GPU opened: {error}");
                eprintln!(
                    "SKIPPED: no GPU ({error}); set {REQUIRE_GPU_VARIABLE}=1 to fail instead"
                );
                None
            }
        })
        .as_ref()
}

/// Runs `body` in a pass over one sequence of `num_tokens` tokens (ids `0..`) at positions
/// `start..`, every token's logits wanted.
pub(crate) fn with_pass<R>(
    backend: &GpuBackend,
    num_tokens: usize,
    start: usize,
    body: impl FnOnce(&mut GpuPass<'_>) -> R,
) -> R {
    let tokens: Vec<u32> = (0..num_tokens as u32).collect();
    let table: Vec<BlockId> = (0..(start + num_tokens).div_ceil(16) as u32).map(BlockId).collect();
    let batch = Batch::single(&tokens, start, &table, LogitsRequest::All);
    let (layout, _) = BatchLayout::new(&batch);
    let mut pass = backend.begin_pass(&layout);
    body(&mut pass)
}

/// Reads `x` back.
pub(crate) fn read(pass: &mut GpuPass<'_>, x: &GpuActivations) -> Vec<f32> {
    GpuBackend::host(pass, x).expect("read back").into_owned()
}

/// Seeded values in `[-1, 1)`.
pub(crate) fn values(seed: u64, len: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// The largest `|a − b|` relative to the largest `|b|`.
pub(crate) fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
