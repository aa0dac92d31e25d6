//! Attention over the paged cache, the CPU backend's semantics: the step's keys and values are
//! written into the layer's cache first (kernel `kv_write`, one workgroup per (token, KV head)),
//! then every token's query heads attend to their sequence's positions `lo ..= p` (`lo = p + 1 −
//! window` on sliding-window layers, else 0) through its block table (kernel `attention`, one
//! workgroup per (token, query head), online softmax over tiles of 32 positions; see
//! shaders/attention.wgsl). Both kernels run in the pass's compute pass, the write first, so
//! the later tokens of a prefill chunk see the keys the earlier ones just wrote.
//!
//! When a step has few (token, head) items and long contexts (decoding), each item's positions
//! are cut into runs of at least 256 positions, a workgroup each ([`plan_splits`]), and
//! `attention_merge` combines their softmax states: a decode of 32 heads would otherwise keep
//! 32 workgroups busy on a GPU that runs thousands.
//!
//! Arithmetic: the query rounded to f16 (as the CPU), scores, softmax and accumulation in f32.
//! Against the CPU the outputs differ only by the order of f32 sums and the exponential; the
//! tests hold them to 1e-5 of the largest output.

use uma_model::backend::{AttentionParams, PagedKvCache};
use uma_model::KvCacheType;

use crate::backend::{GpuActivations, GpuPass, GpuVector};
use crate::error::{GpuError, Result};
use crate::kv_cache::GpuKvCache;
use crate::recorder::grid;
use crate::shader::COMMON;
use crate::step::StepArray;

const KV_WRITE: &str = include_str!("../shaders/kv_write.wgsl");
const ATTENTION: &str = include_str!("../shaders/attention.wgsl");
const MERGE: &str = include_str!("../shaders/attention_merge.wgsl");

/// Positions per tile of the attention kernel (its `TILE`).
const TILE: usize = 32;
/// Steps with fewer (token, query head) items than this split long contexts (decoding: a few
/// dozen workgroups would leave most of a GPU idle).
const SPLIT_BELOW_ITEMS: usize = 256;
/// Fewest positions a split gets (a multiple of TILE).
const MIN_SPLIT_POSITIONS: usize = 256;
/// Most splits of a (token, head)'s positions.
const MAX_SPLITS: usize = 64;
/// Workgroups a split step aims for.
const TARGET_WORKGROUPS: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct WriteParams {
    num_tokens: u32,
    num_kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    scales_offset: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct AttentionUniform {
    num_tokens: u32,
    num_heads: u32,
    num_kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    has_window: u32,
    window: u32,
    scale: f32,
    scales_offset: u32,
    num_splits: u32,
    positions_per_split: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct MergeParams {
    num_items: u32,
    head_dim: u32,
    num_splits: u32,
    num_heads: u32,
}

/// How many runs to cut each (token, head)'s positions into, for `num_items` (token, head)
/// items attending to at most `context` positions.
fn plan_splits(num_items: usize, context: usize) -> usize {
    if num_items >= SPLIT_BELOW_ITEMS {
        return 1;
    }
    let by_length = context / MIN_SPLIT_POSITIONS;
    let by_occupancy = TARGET_WORKGROUPS.div_ceil(num_items);
    by_length.min(by_occupancy).clamp(1, MAX_SPLITS)
}

/// Writes the step's keys and values into layer `layer` of `kv`, then attention.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    pass: &mut GpuPass<'_>,
    kv: &mut GpuKvCache,
    layer: usize,
    (params, sinks): (&AttentionParams, Option<&GpuVector>),
    q: &GpuActivations,
    k: &GpuActivations,
    v: &GpuActivations,
    out: &mut GpuActivations,
) -> Result<()> {
    attention_with_splits(pass, kv, layer, (params, sinks), [q, k, v], out, None)
}

/// [`attention`], each (token, head)'s positions cut into `splits` runs (`None`: as
/// [`plan_splits`] says).
fn attention_with_splits(
    pass: &mut GpuPass<'_>,
    kv: &mut GpuKvCache,
    layer: usize,
    (params, sinks): (&AttentionParams, Option<&GpuVector>),
    [q, k, v]: [&GpuActivations; 3],
    out: &mut GpuActivations,
    splits: Option<usize>,
) -> Result<()> {
    check(pass, kv, layer, params, [q, k, v, out])?;
    if sinks.is_some_and(|s| s.len != params.num_attention_heads) {
        let reason = format!("attention: sinks for {} heads", params.num_attention_heads);
        return Err(GpuError::Validation { reason });
    }
    let num_tokens = q.num_rows;
    if num_tokens == 0 {
        return Ok(());
    }
    let (heads, kv_heads, hd) =
        (params.num_attention_heads, params.num_key_value_heads, params.head_dim);
    let (name, defines): (&str, &[&str]) = match kv.kv_type() {
        KvCacheType::F16 => ("f16", &[]),
        KvCacheType::Q8_0 => ("q8_0", &["Q8_0"]),
    };
    // Heads past the usual variant's (latent attention's) take the wide one.
    let wide = hd > crate::kv_cache::NARROW_HEAD_DIM;
    let name = if wide { format!("{name}_wide") } else { name.to_owned() };
    let defines: Vec<&str> = defines.iter().copied().chain(wide.then_some("WIDE_HEADS")).collect();
    let (name, defines) = (name.as_str(), &defines[..]);
    let block_size = kv.block_size() as u32;
    let scales_offset = kv.scales_offset();
    let buffers = &kv.layers[layer];
    let step = pass.step();
    let step_arrays = [
        step.binding(StepArray::Positions),
        step.binding(StepArray::Sequences),
        step.binding(StepArray::BlockTableStarts),
        step.binding(StepArray::BlockTables),
    ];
    let cache =
        [buffers.keys.as_entire_buffer_binding(), buffers.values.as_entire_buffer_binding()];

    let write = pass.kernel(&format!("kv_write_{name}"), &[COMMON, KV_WRITE], defines)?;
    let write_params = WriteParams {
        num_tokens: num_tokens as u32,
        num_kv_heads: kv_heads as u32,
        head_dim: hd as u32,
        block_size,
        scales_offset,
    };
    let mut bindings = vec![k.binding(), v.binding(), cache[0].clone(), cache[1].clone()];
    bindings.extend(step_arrays.iter().cloned());
    pass.dispatch(&write, &write_params, &bindings, grid((num_tokens * kv_heads) as u32))?;

    let context = pass
        .layout()
        .places()
        .iter()
        .map(|place| params.window.map_or(place.position + 1, |w| w.min(place.position + 1)))
        .max()
        .unwrap_or(1);
    let num_items = num_tokens * heads;
    let num_splits = splits.unwrap_or_else(|| plan_splits(num_items, context)).max(1);
    let positions_per_split = context.div_ceil(num_splits).next_multiple_of(TILE);
    let uniform = AttentionUniform {
        num_tokens: num_tokens as u32,
        num_heads: heads as u32,
        num_kv_heads: kv_heads as u32,
        head_dim: hd as u32,
        block_size,
        has_window: u32::from(params.window.is_some()),
        window: params.window.map_or(0, |w| w.min(u32::MAX as usize) as u32),
        scale: params.scale,
        scales_offset,
        num_splits: num_splits as u32,
        positions_per_split: positions_per_split as u32,
    };
    // Sinks join the softmax where the states are normalised: the kernel's end, or the merge.
    let sink = if sinks.is_some() { "_sinks" } else { "" };
    if num_splits == 1 {
        let defines: Vec<&str> = defines.iter().copied().chain(sinks.map(|_| "SINKS")).collect();
        let kernel =
            pass.kernel(&format!("attention_{name}{sink}"), &[COMMON, ATTENTION], &defines)?;
        let mut bindings = vec![q.binding(), cache[0].clone(), cache[1].clone(), out.binding()];
        bindings.extend(step_arrays.iter().cloned());
        bindings.extend(sinks.map(GpuVector::binding));
        return pass.dispatch(&kernel, &uniform, &bindings, grid(num_items as u32));
    }
    let split_name = format!("attention_{name}_split");
    let split_defines: Vec<&str> = defines.iter().copied().chain(["SPLIT"]).collect();
    let kernel = pass.kernel(&split_name, &[COMMON, ATTENTION], &split_defines)?;
    // [num_items, num_splits, head_dim + 2]
    let partials_len = num_items * num_splits * (hd + 2);
    let partials = pass.scratch((partials_len * 4) as u64);
    let partials_binding = crate::backend::whole(partials.buffer(), partials_len);
    let mut bindings = vec![q.binding(), cache[0].clone(), cache[1].clone(), partials_binding];
    bindings.extend(step_arrays.iter().cloned());
    let groups = grid((num_items * num_splits) as u32);
    pass.dispatch(&kernel, &uniform, &bindings, groups)?;
    let merge_defines: &[&str] = if sinks.is_some() { &["SINKS"] } else { &[] };
    let merge = pass.kernel(&format!("attention_merge{sink}"), &[COMMON, MERGE], merge_defines)?;
    let merge_params = MergeParams {
        num_items: num_items as u32,
        head_dim: hd as u32,
        num_splits: num_splits as u32,
        num_heads: heads as u32,
    };
    let mut buffers = vec![crate::backend::whole(partials.buffer(), partials_len), out.binding()];
    buffers.extend(sinks.map(GpuVector::binding));
    pass.dispatch(&merge, &merge_params, &buffers, grid(num_items as u32))
}

/// Refuses shapes the kernels would misread: a layer or heads the cache does not have, rows
/// that are not the step's tokens, and positions past a sequence's block table or blocks past
/// the cache (the CPU would panic; the GPU would silently read or write another block).
fn check(
    pass: &GpuPass<'_>,
    kv: &GpuKvCache,
    layer: usize,
    params: &AttentionParams,
    [q, k, v, out]: [&GpuActivations; 4],
) -> Result<()> {
    let bad = |reason: String| Err(GpuError::Validation { reason: format!("attention: {reason}") });
    let (heads, kv_heads, hd) =
        (params.num_attention_heads, params.num_key_value_heads, params.head_dim);
    if layer >= kv.layers.len() {
        return bad(format!("layer {layer} of a cache of {} layers", kv.layers.len()));
    }
    if kv_heads != kv.num_key_value_heads() || hd != kv.head_dim() {
        return bad(format!(
            "{kv_heads} kv heads × {hd} dims, the cache holds {} × {}",
            kv.num_key_value_heads(),
            kv.head_dim()
        ));
    }
    if kv_heads == 0 || heads == 0 || !heads.is_multiple_of(kv_heads) {
        return bad(format!("{heads} query heads over {kv_heads} kv heads"));
    }
    let layout = pass.layout();
    let num_tokens = layout.num_tokens();
    let shapes = [(q, heads * hd, "q"), (k, kv_heads * hd, "k"), (v, kv_heads * hd, "v")];
    for (x, width, what) in shapes.into_iter().chain([(out, heads * hd, "out")]) {
        if x.num_rows != num_tokens || x.width != width {
            return bad(format!(
                "{what} is [{}, {}], the step needs [{num_tokens}, {width}]",
                x.num_rows, x.width
            ));
        }
    }
    let block_size = kv.block_size();
    let num_blocks = kv.num_blocks();
    let tables = layout.block_tables();
    for place in layout.places() {
        let table = tables[place.sequence];
        if place.position / block_size >= table.len() {
            return bad(format!(
                "position {} of sequence {} is past its {} blocks",
                place.position,
                place.sequence,
                table.len()
            ));
        }
    }
    if let Some(block) = tables.iter().flat_map(|t| t.iter()).find(|b| b.index() >= num_blocks) {
        return bad(format!("block {} of a cache of {num_blocks}", block.index()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The GPU against the CPU backend on identical steps. Tolerance: the largest difference
    //! is under 1e-5 of the largest |output| for both cache types. The Q8_0 cache is quantized
    //! bit-exactly like the CPU's (checked on the cache contents, as are the f16 ones), so both
    //! attend over the same keys and values; what differs is only the order of f32 sums and
    //! the exponential (the CPU's polynomial against the device's `exp`).
    use super::*;
    use crate::backend::GpuBackend;
    use crate::test_support::{backend, read, relative_error, values};
    use half::f16;
    use uma_ids::BlockId;
    use uma_kernels::BlockQ8_0;
    use uma_model::backend::{Backend, BatchLayout};
    use uma_model::{
        Architecture, Batch, CpuBackend, KvCache, LayerType, LogitsRequest, ModelConfig, RopeStyle,
    };

    const TOLERANCE: f32 = 1e-5;

    fn config(heads: usize, kv_heads: usize, head_dim: usize, layers: usize) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::from_name("llama").expect("llama is known"),
            vocab_size: 32,
            hidden_size: heads * head_dim,
            num_hidden_layers: layers,
            intermediate_size: 64,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            max_position_embeddings: 4096,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            rope_local_base_freq: 10_000.0,
            rope_freq_scale: 1.0,
            rope_yarn: None,
            rope_dimension_count: head_dim,
            rope_style: RopeStyle::Neox,
            sliding_window: None,
            layer_types: vec![LayerType::FullAttention; layers],
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            final_logit_softcapping: None,
            tie_word_embeddings: true,
            experts: None,
            mla: None,
        }
    }

    /// One sequence of a step: its first position, its number of tokens, its block table.
    struct Chunk {
        start: usize,
        len: usize,
        table: Vec<BlockId>,
    }

    fn chunk(start: usize, len: usize, blocks: &[u32]) -> Chunk {
        Chunk { start, len, table: blocks.iter().map(|&b| BlockId(b)).collect() }
    }

    /// A step's queries, keys and values, `[num_tokens, width]` each.
    struct Inputs {
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
    }

    /// A GPU cache and a CPU cache of one shape, stepped with the same inputs.
    struct Caches {
        gpu: GpuKvCache,
        cpu: KvCache,
        params: AttentionParams,
        /// How the GPU splits each (token, head)'s positions (`None`: as it plans).
        splits: Option<usize>,
        /// Per query head, when the layer has attention sinks.
        sinks: Option<Vec<f32>>,
    }

    impl Caches {
        fn new(
            backend: &GpuBackend,
            (heads, kv_heads, hd): (usize, usize, usize),
            layers: usize,
            kv_type: KvCacheType,
            window: Option<usize>,
            num_blocks: usize,
        ) -> Caches {
            let config = config(heads, kv_heads, hd, layers);
            let block_size = uma_model::DEFAULT_BLOCK_SIZE;
            let gpu = GpuKvCache::new(backend, &config, num_blocks, block_size, kv_type).unwrap();
            let cpu = KvCache::new(&config, num_blocks, block_size, kv_type).unwrap();
            let params = AttentionParams {
                num_attention_heads: heads,
                num_key_value_heads: kv_heads,
                head_dim: hd,
                scale: config.attention_scale,
                window,
            };
            Caches { gpu, cpu, params, splits: None, sinks: None }
        }

        /// Seeded inputs for `num_tokens` tokens (queries doubled: a peakier softmax).
        fn inputs(&self, seed: u64, num_tokens: usize) -> Inputs {
            let p = &self.params;
            let (q_dim, kv_dim) =
                (p.num_attention_heads * p.head_dim, p.num_key_value_heads * p.head_dim);
            let q = values(seed, num_tokens * q_dim).iter().map(|x| 2.0 * x).collect();
            Inputs {
                q,
                k: values(seed + 1, num_tokens * kv_dim),
                v: values(seed + 2, num_tokens * kv_dim),
            }
        }

        /// Attention of layer `layer` over `chunks` on both backends: (GPU, CPU) outputs. Also
        /// checks that the GPU cache holds exactly what the CPU's quantization gives.
        fn step(
            &mut self,
            backend: &GpuBackend,
            layer: usize,
            chunks: &[Chunk],
            inputs: &Inputs,
        ) -> (Vec<f32>, Vec<f32>) {
            let tokens: Vec<Vec<u32>> =
                chunks.iter().map(|c| (0..c.len as u32).collect()).collect();
            let mut batch = Batch::new();
            for (c, t) in chunks.iter().zip(&tokens) {
                batch.push(t, c.start, &c.table, LogitsRequest::All);
            }
            let (layout, _) = BatchLayout::new(&batch);
            let n = layout.num_tokens();
            let p = self.params;
            let (q_dim, kv_dim) =
                (p.num_attention_heads * p.head_dim, p.num_key_value_heads * p.head_dim);
            let Inputs { q, k, v } = inputs;

            let mut cpu_pass = CpuBackend.begin_pass(&layout);
            let mut expected = vec![0.0f32; n * q_dim];
            let (cpu, out) = (&mut self.cpu, &mut expected);
            let sinks = self.sinks.as_ref();
            CpuBackend::attention(&mut cpu_pass, cpu, layer, &p, sinks, q, k, v, out);

            let mut pass = backend.begin_pass(&layout);
            let gq = pass.upload_activations(q, n, q_dim);
            let gk = pass.upload_activations(k, n, kv_dim);
            let gv = pass.upload_activations(v, n, kv_dim);
            let sinks = sinks.map(|s| backend.vector("sinks", s).unwrap());
            let mut out = GpuBackend::activations(&mut pass, n, q_dim);
            let (gpu, splits) = (&mut self.gpu, self.splits);
            let qkv = [&gq, &gk, &gv];
            attention_with_splits(
                &mut pass,
                gpu,
                layer,
                (&p, sinks.as_ref()),
                qkv,
                &mut out,
                splits,
            )
            .unwrap();
            let got = read(&mut pass, &out);
            self.check_cache(&mut pass, layer, &layout, k, v);
            (got, expected)
        }

        /// Every token's rows in the GPU cache are its keys and values as f16, or as ggml's
        /// Q8_0 blocks (the CPU cache's quantization).
        fn check_cache(
            &self,
            pass: &mut GpuPass<'_>,
            layer: usize,
            layout: &BatchLayout<'_>,
            k: &[f32],
            v: &[f32],
        ) {
            let (kv_heads, hd) = (self.params.num_key_value_heads, self.params.head_dim);
            let bs = self.gpu.block_size();
            let buffers = &self.gpu.layers[layer];
            for (tensor, new) in [(&buffers.keys, k), (&buffers.values, v)] {
                let bytes =
                    pass.recorder().read_many(&[(tensor, 0, tensor.size())]).unwrap().remove(0);
                let words: &[u32] = bytemuck::cast_slice(&bytes);
                for (t, place) in layout.places().iter().enumerate() {
                    let block = layout.block_tables()[place.sequence][place.position / bs];
                    for head in 0..kv_heads {
                        let row = (block.index() * kv_heads + head) * bs + place.position % bs;
                        let source = &new[(t * kv_heads + head) * hd..][..hd];
                        match self.gpu.kv_type() {
                            KvCacheType::F16 => {
                                let stored: &[u16] =
                                    bytemuck::cast_slice(&words[row * hd / 2..][..hd / 2]);
                                let want: Vec<u16> =
                                    source.iter().map(|&x| f16::from_f32(x).to_bits()).collect();
                                assert_eq!(stored, &want[..], "f16 row of token {t}, head {head}");
                            }
                            KvCacheType::Q8_0 => {
                                let quants: &[u8] =
                                    bytemuck::cast_slice(&words[row * hd / 4..][..hd / 4]);
                                let scale_words = (hd / 32).div_ceil(2);
                                let at = self.gpu.scales_offset() as usize + row * scale_words;
                                let scales: &[u16] =
                                    bytemuck::cast_slice(&words[at..at + scale_words]);
                                for (g, group) in source.chunks_exact(32).enumerate() {
                                    let block = BlockQ8_0::quantize(group.try_into().unwrap());
                                    assert_eq!(
                                        scales[g],
                                        block.d.to_bits(),
                                        "scale {g} of token {t}, head {head} (row {row}: scales \
                                         {scales:?}, first quants {:?}, amax {:e})",
                                        &quants[..8],
                                        group.iter().fold(0f32, |m, x| m.max(x.abs()))
                                    );
                                    let want: Vec<u8> = block.qs.iter().map(|&q| q as u8).collect();
                                    assert_eq!(
                                        &quants[g * 32..][..32],
                                        &want[..],
                                        "quants {g} of token {t}, head {head}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn assert_close(what: &str, (got, expected): (Vec<f32>, Vec<f32>)) {
        let error = relative_error(&got, &expected);
        assert!(error < TOLERANCE, "{what}: relative error {error}");
    }

    #[test]
    fn prefill_then_decode_matches_the_cpu() {
        let Some(backend) = backend() else { return };
        for kv_type in [KvCacheType::F16, KvCacheType::Q8_0] {
            for shape in [(4, 2, 64), (4, 2, 128), (2, 1, 256), (4, 1, 576)] {
                for window in [None, Some(7)] {
                    let what = format!("{kv_type:?} {shape:?} window {window:?}");
                    let mut caches = Caches::new(backend, shape, 1, kv_type, window, 8);
                    // Blocks out of order, with unused ones around them.
                    let prefill = [chunk(0, 20, &[5, 2])];
                    let inputs = caches.inputs(1, 20);
                    assert_close(
                        &format!("{what} prefill"),
                        caches.step(backend, 0, &prefill, &inputs),
                    );
                    let decode = [chunk(20, 1, &[5, 2])];
                    let inputs = caches.inputs(2, 1);
                    assert_close(
                        &format!("{what} decode"),
                        caches.step(backend, 0, &decode, &inputs),
                    );
                }
            }
        }
    }

    #[test]
    fn two_sequences_and_a_chunk_mid_sequence_match_the_cpu() {
        let Some(backend) = backend() else { return };
        for kv_type in [KvCacheType::F16, KvCacheType::Q8_0] {
            // A window shorter than the longer context.
            for window in [None, Some(24)] {
                let what = format!("{kv_type:?} window {window:?}");
                let mut caches = Caches::new(backend, (6, 2, 64), 2, kv_type, window, 9);
                let (a, b) = ([7, 3], [1, 8, 4]);
                let first = [chunk(0, 20, &a), chunk(0, 5, &b)];
                let inputs = caches.inputs(3, 25);
                assert_close(&format!("{what} prefills"), caches.step(backend, 1, &first, &inputs));
                // A decodes while B's prompt continues from position 5 over three blocks.
                let second = [chunk(20, 1, &a), chunk(5, 40, &b)];
                let inputs = caches.inputs(4, 41);
                assert_close(
                    &format!("{what} decode and chunk"),
                    caches.step(backend, 1, &second, &inputs),
                );
            }
        }
    }

    #[test]
    fn split_contexts_match_the_cpu() {
        let Some(backend) = backend() else { return };
        for kv_type in [KvCacheType::F16, KvCacheType::Q8_0] {
            // A window of 50 leaves the last splits of 7 empty.
            for window in [None, Some(50)] {
                let what = format!("{kv_type:?} window {window:?}");
                let mut caches = Caches::new(backend, (4, 2, 128), 1, kv_type, window, 16);
                let blocks: Vec<u32> = (0..14).map(|b| (b * 11 + 5) % 16).collect();
                let (a, b) = (&blocks[..7], &blocks[7..]);
                let prefill = [chunk(0, 100, a), chunk(0, 60, b)];
                let inputs = caches.inputs(9, 160);
                assert_close(
                    &format!("{what} prefill"),
                    caches.step(backend, 0, &prefill, &inputs),
                );
                // A decodes, B continues its prompt, each over runs of positions.
                for (step, splits) in [(0, 3), (1, 7)] {
                    caches.splits = Some(splits);
                    let next = [chunk(100 + step, 1, a), chunk(60 + 5 * step, 5, b)];
                    let inputs = caches.inputs(10 + step as u64, 6);
                    let what = format!("{what} {splits} splits");
                    assert_close(&what, caches.step(backend, 0, &next, &inputs));
                }
            }
        }
        // Decoding a long context splits on its own.
        assert_eq!(plan_splits(32, 4096), 16);
        assert_eq!(plan_splits(32, 100), 1);
        assert_eq!(plan_splits(4096, 4096), 1);
    }

    /// gpt-oss's sinks, below, among and far above the scores, in one pass and split.
    #[test]
    fn attention_sinks_match_the_cpu() {
        let Some(backend) = backend() else { return };
        for window in [None, Some(5)] {
            let mut caches = Caches::new(backend, (4, 2, 64), 1, KvCacheType::F16, window, 16);
            caches.sinks = Some(vec![-30.0, 0.0, 1.5, 60.0]);
            let blocks: Vec<u32> = (0..12).map(|b| (b * 5 + 3) % 16).collect();
            let (a, b) = (&blocks[..7], &blocks[7..]);
            let prefill = [chunk(0, 100, a), chunk(0, 60, b)];
            let inputs = caches.inputs(21, 160);
            let what = format!("sinks, window {window:?}");
            assert_close(&what, caches.step(backend, 0, &prefill, &inputs));
            for (step, splits) in [(0, 1), (1, 3), (2, 7)] {
                caches.splits = Some(splits);
                let next = [chunk(100 + step, 1, a), chunk(60 + step, 1, b)];
                let inputs = caches.inputs(30 + step as u64, 2);
                let what = format!("{what}, {splits} splits");
                assert_close(&what, caches.step(backend, 0, &next, &inputs));
            }
        }
    }

    #[test]
    fn q8_0_quantization_is_the_cpus_bit_for_bit() {
        let Some(backend) = backend() else { return };
        // 4096 groups of 32 of magnitudes 1e-3 to 1e3 (scales over many exponents), each
        // checked against ggml's quantization by `step`.
        let mut caches = Caches::new(backend, (2, 2, 256), 1, KvCacheType::Q8_0, Some(4), 9);
        let inputs = caches.inputs(8, 128);
        let magnitude = |i: usize| 10f32.powi((i / 32 % 7) as i32 - 3);
        let scaled = |x: &[f32]| x.iter().enumerate().map(|(i, &x)| x * magnitude(i)).collect();
        let inputs = Inputs { q: inputs.q.clone(), k: scaled(&inputs.k), v: scaled(&inputs.v) };
        let blocks: Vec<u32> = (0..8).map(|b| (b * 5 + 3) % 9).collect();
        let (got, expected) = caches.step(backend, 0, &[chunk(0, 128, &blocks)], &inputs);
        assert_close("q8_0 magnitudes", (got, expected));
    }

    #[test]
    fn attention_over_a_copied_prefix_equals_attention_over_the_original() {
        let Some(backend) = backend() else { return };
        for kv_type in [KvCacheType::F16, KvCacheType::Q8_0] {
            let mut caches = Caches::new(backend, (4, 2, 64), 2, kv_type, None, 8);
            // Sequence A: 20 positions in blocks 2 and 5, in both layers.
            let prefill = [chunk(0, 20, &[2, 5])];
            let inputs = caches.inputs(5, 20);
            for layer in 0..2 {
                assert_close("prefill", caches.step(backend, layer, &prefill, &inputs));
            }
            // B shares A's first block whole and the first 4 positions of its second.
            for cache in [&mut caches.gpu as &mut dyn PagedKvCache, &mut caches.cpu] {
                cache.copy_block_prefix(BlockId(2), BlockId(6), 16).unwrap();
                cache.copy_block_prefix(BlockId(5), BlockId(3), 4).unwrap();
            }
            // Both decode position 20 with the same inputs: their outputs are the same bits.
            let decode = [chunk(20, 1, &[2, 5]), chunk(20, 1, &[6, 3])];
            let one = caches.inputs(6, 1);
            let inputs = Inputs { q: one.q.repeat(2), k: one.k.repeat(2), v: one.v.repeat(2) };
            let (got, expected) = caches.step(backend, 1, &decode, &inputs);
            let half = got.len() / 2;
            assert_eq!(got[..half], got[half..], "{kv_type:?}: the copy attends differently");
            assert_close(&format!("{kv_type:?} copied"), (got, expected));
        }
    }

    #[test]
    fn invalid_sizes_ids_and_shapes_are_errors() {
        let Some(backend) = backend() else { return };
        let config = config(4, 2, 64, 2);
        let new = |config: &ModelConfig, blocks, kv_type| {
            GpuKvCache::new(backend, config, blocks, 16, kv_type)
        };
        assert!(new(&config, 0, KvCacheType::F16).is_err(), "no blocks");
        assert!(GpuKvCache::new(backend, &config, 4, 0, KvCacheType::F16).is_err(), "empty blocks");
        let max = backend.context().info().max_binding_bytes as usize;
        let too_many = max / (16 * 2 * 64 * 2) + 1;
        assert!(new(&config, too_many, KvCacheType::F16).is_err(), "a layer past the binding");
        assert!(new(&uma_model_config(48), 4, KvCacheType::Q8_0).is_err(), "partial q8_0 groups");
        assert!(new(&uma_model_config(640), 4, KvCacheType::F16).is_err(), "heads past the kernel");

        let mut cache = new(&config, 4, KvCacheType::Q8_0).unwrap();
        assert_eq!(cache.size_in_bytes(), 2 * 2 * 4 * 16 * 2 * (64 + 4));
        assert!(cache.check_shape(&config).is_ok());
        assert!(cache.check_shape(&uma_model_config(32)).is_err());
        assert!(cache.copy_block_prefix(BlockId(4), BlockId(0), 1).is_err(), "source");
        assert!(cache.copy_block_prefix(BlockId(0), BlockId(9), 1).is_err(), "destination");
        assert!(cache.copy_block_prefix(BlockId(0), BlockId(1), 17).is_err(), "positions");
        assert!(cache.copy_block_prefix(BlockId(1), BlockId(1), 16).is_ok());

        // Attention on a layer the cache lacks, past a sequence's blocks, past the cache.
        let mut caches = Caches::new(backend, (4, 2, 64), 1, KvCacheType::F16, None, 4);
        for (layer, blocks, what) in
            [(1, &[0u32][..], "layer"), (0, &[0], "table"), (0, &[0, 7], "block")]
        {
            let tokens = [0u32; 3];
            let table: Vec<BlockId> = blocks.iter().map(|&b| BlockId(b)).collect();
            let batch = Batch::single(&tokens, 15, &table, LogitsRequest::All);
            let (layout, _) = BatchLayout::new(&batch);
            let mut pass = backend.begin_pass(&layout);
            let inputs = caches.inputs(7, 3);
            let gq = pass.upload_activations(&inputs.q, 3, 4 * 64);
            let gk = pass.upload_activations(&inputs.k, 3, 2 * 64);
            let mut out = GpuBackend::activations(&mut pass, 3, 4 * 64);
            let p = caches.params;
            let gpu = &mut caches.gpu;
            let result = attention(&mut pass, gpu, layer, (&p, None), &gq, &gk, &gk, &mut out);
            assert!(result.is_err(), "{what}");
        }
    }

    /// The test config with heads of `head_dim` elements.
    fn uma_model_config(head_dim: usize) -> ModelConfig {
        config(4, 2, head_dim, 2)
    }
}
