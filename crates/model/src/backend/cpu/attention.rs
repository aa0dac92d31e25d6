//! Grouped-query attention over the paged KV cache: each query token attends to its own
//! sequence's positions `lo ..= p` (`lo = p + 1 − window` on sliding-window layers, else 0),
//! reading keys and values through the sequence's block table.
//!
//! Fused: one pass over the sequence's KV blocks with an online softmax (a running maximum and
//! sum per query, the value accumulator rescaled when the maximum grows), reading the f16 cache
//! one block at a time into per-thread f32 scratch. A work item is a tile of consecutive query
//! tokens of one sequence × one KV head: every loaded block serves all the tile's tokens and all
//! `group` query heads of the KV head, so a block is converted once per tile, and repeated heads
//! are never materialised. Items run on [`ThreadPool::global`].
//!
//! Cache layout, this module's business only (see [`write_kv`]): a block holds, per KV head,
//! its keys transposed, `[head_dim, block_size]`, then (in the value tensor) its values
//! `[block_size, head_dim]`. Transposed keys give the scores of a block's positions as
//! `block_size` independent lanes (no horizontal sums), and a block's K or V for one head is
//! one contiguous run to convert.
//!
//! Arithmetic as llama.cpp with an f16 cache, but for one step: the query is rounded to f16
//! (ggml converts it to the cache's type for the `K·q` dot product), scores `(q·k) · scale` in
//! f32, softmax in f32, and the values accumulated in f32 where llama.cpp's CPU flash attention
//! accumulates `softmax·V` in f16 for decode steps and prompts under 64 tokens (about 1e-3
//! relative; measured on the tiny MoE files, `crates/model/tests/tiny_greedy_llama_cpp.rs`). Each query's arithmetic depends only on its own positions and on the
//! absolute block boundaries, never on the tile it shares or the thread that runs it, so a
//! token's output is bit-identical alone or batched.

use std::cell::RefCell;
use std::ops::RangeInclusive;
use std::sync::{Mutex, PoisonError};

use half::f16;
use half::slice::HalfFloatSliceExt;
use uma_kernels::ThreadPool;

use uma_kernels::BlockQ8_0;

use super::kv_cache::{KvTensor, LayerKv};
use crate::backend::TokenPlace;
use crate::kv_cache_type::Q8_0_GROUP;
use uma_ids::BlockId;

/// Shapes and arithmetic of one attention layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttentionShape {
    pub(crate) num_attention_heads: usize,
    pub(crate) num_key_value_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) scale: f32,
    /// Sliding window (positions `j` with `p − j < window`), or the whole context.
    pub(crate) window: Option<usize>,
    pub(crate) block_size: usize,
}

/// Most query tokens in one tile: the tile's accumulators (`tokens × group × head_dim` f32)
/// stay in L2 while each K/V block is reused by all of them.
const MAX_TILE_TOKENS: usize = 16;

/// Blocks per segment. A query's online softmax starts afresh at every segment boundary and the
/// segments' states are merged in order, always: so a long context can be split over threads
/// by segment (few queries, e.g. decoding one sequence) with the same arithmetic as when one
/// thread runs all of them.
const SEGMENT_BLOCKS: usize = 16;

/// Consecutive batch tokens `start..end`, all of one sequence, which attend to positions in
/// the blocks `first_block ..= last_block` of its table.
#[derive(Clone, Copy, Debug)]
struct Tile {
    start: usize,
    end: usize,
    first_block: usize,
    last_block: usize,
}

impl Tile {
    fn segments(&self) -> RangeInclusive<usize> {
        self.first_block / SEGMENT_BLOCKS..=self.last_block / SEGMENT_BLOCKS
    }
}

/// Online-softmax state of a tile's query rows (`tokens × group`, token-major).
#[derive(Default)]
struct RowStates {
    max: Vec<f32>, // [num_rows]: the largest score so far, −∞ before any position
    sum: Vec<f32>, // [num_rows]: Σ e^(score − max)
    acc: Vec<f32>, // [num_rows, head_dim]: Σ e^(score − max) · value
}

impl RowStates {
    fn reset(&mut self, num_rows: usize, hd: usize) {
        self.max.clear();
        self.max.resize(num_rows, f32::NEG_INFINITY);
        self.sum.clear();
        self.sum.resize(num_rows, 0.0);
        self.acc.clear();
        self.acc.resize(num_rows * hd, 0.0);
    }

    fn copy_from(&mut self, other: &RowStates) {
        self.max.clone_from(&other.max);
        self.sum.clone_from(&other.sum);
        self.acc.clone_from(&other.acc);
    }

    /// Folds in `later`, the state of the same rows over a later segment. Rows `later` has no
    /// position for are left exactly as they are; rows `self` has none for take `later`'s.
    fn merge(&mut self, later: &RowStates, hd: usize) {
        for (r, &later_max) in later.max.iter().enumerate() {
            if later_max == f32::NEG_INFINITY {
                continue;
            }
            let acc = &mut self.acc[r * hd..(r + 1) * hd];
            let later_acc = &later.acc[r * hd..(r + 1) * hd];
            if self.max[r] == f32::NEG_INFINITY {
                self.max[r] = later_max;
                self.sum[r] = later.sum[r];
                acc.copy_from_slice(later_acc);
                continue;
            }
            let max = self.max[r].max(later_max);
            let (a, b) = (
                uma_kernels::vector::exp_non_positive(self.max[r] - max),
                uma_kernels::vector::exp_non_positive(later_max - max),
            );
            self.max[r] = max;
            self.sum[r] = self.sum[r] * a + later.sum[r] * b;
            for (x, &y) in acc.iter_mut().zip(later_acc) {
                *x = *x * a + y * b;
            }
        }
    }
}

/// One thread's buffers, reused across calls.
#[derive(Default)]
struct Scratch {
    queries: Vec<f32>, // [num_rows, head_dim], rounded to f16
    segment: RowStates,
    total: RowStates,
    keys: Vec<f32>,   // [head_dim, block_size rounded up to LANES], transposed
    values: Vec<f32>, // [block_size, head_dim]
    scores: Vec<f32>, // [block_size rounded up to LANES]
    scales: Vec<f32>, // a Q8_0 block's scales in f32
}

/// The calling thread's work lists, reused across calls.
#[derive(Default)]
struct Plan {
    tiles: Vec<Tile>,
    /// When segments run as separate items: `(tile, segment)`, each tile's in order.
    segments: Vec<(usize, usize)>,
    /// When segments run as separate items: each item's result.
    partials: Vec<Mutex<RowStates>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
    static PLAN: RefCell<Plan> = RefCell::default();
}

/// What every work item reads.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    kv: &'a LayerKv,
    shape: &'a AttentionShape,
    block_tables: &'a [&'a [BlockId]],
    places: &'a [TokenPlace],
    q: &'a [f32], // [num_tokens, num_attention_heads * head_dim]
    /// Per query head, a learned logit that joins every softmax without a value (gpt-oss).
    sinks: Option<&'a [f32]>,
}

/// Offset of `kv_head`'s part of a block (`[head_dim, block_size]` keys or `[block_size,
/// head_dim]` values) in a layer's K or V tensor.
#[inline]
fn head_offset(shape: &AttentionShape, block: BlockId, kv_head: usize) -> usize {
    let per_head = shape.block_size * shape.head_dim;
    (block.index() * shape.num_key_value_heads + kv_head) * per_head
}

/// First position a query at `position` attends to.
#[inline]
fn first_position(shape: &AttentionShape, position: usize) -> usize {
    shape.window.map_or(0, |w| (position + 1).saturating_sub(w))
}

/// Writes one token's keys and values (`[kv_dim]` each) at `position` of `block_table`.
pub(crate) fn write_kv(
    kv: &mut LayerKv,
    shape: &AttentionShape,
    block_table: &[BlockId],
    position: usize,
    keys: &[f32],
    values: &[f32],
) {
    let (hd, bs) = (shape.head_dim, shape.block_size);
    let block = block_table[position / bs];
    let slot = position % bs;
    for kv_head in 0..shape.num_key_value_heads {
        let base = head_offset(shape, block, kv_head);
        let (keys, values) = (&keys[kv_head * hd..][..hd], &values[kv_head * hd..][..hd]);
        // Keys transposed: element d of the position's row goes to `d · block_size + slot`
        // (a Q8_0 scale: group g's to `g · block_size + slot`). Values: the position's row.
        let at = base + slot * hd;
        match &mut kv.keys {
            KvTensor::F16(cache) => {
                for (d, &k) in keys.iter().enumerate() {
                    cache[base + d * bs + slot] = f16::from_f32(k);
                }
            }
            KvTensor::Q8_0 { quants, scales } => {
                for (g, block) in q8_0_groups(keys).enumerate() {
                    scales[base / Q8_0_GROUP + g * bs + slot] = block.d;
                    for (i, &q) in block.qs.iter().enumerate() {
                        quants[base + (g * Q8_0_GROUP + i) * bs + slot] = q;
                    }
                }
            }
        }
        match &mut kv.values {
            KvTensor::F16(cache) => cache[at..at + hd].convert_from_f32_slice(values),
            KvTensor::Q8_0 { quants, scales } => {
                let groups = hd / Q8_0_GROUP;
                for (g, block) in q8_0_groups(values).enumerate() {
                    scales[base / Q8_0_GROUP + slot * groups + g] = block.d;
                    quants[at + g * Q8_0_GROUP..at + (g + 1) * Q8_0_GROUP]
                        .copy_from_slice(&block.qs);
                }
            }
        }
    }
}

/// `row` as ggml's Q8_0 blocks (`quantize_row_q8_0`), one per 32 elements.
fn q8_0_groups(row: &[f32]) -> impl Iterator<Item = BlockQ8_0> + '_ {
    row.chunks_exact(Q8_0_GROUP)
        .map(|group| BlockQ8_0::quantize(group.try_into().expect("chunks of Q8_0_GROUP")))
}

/// `out[t]` = attention of token `t` (queries `q[t]`, `[num_attention_heads · head_dim]`) over
/// its sequence's cached keys and values, for every token of the batch; with `sinks`
/// (`[num_attention_heads]`), each head's softmax also weighs its sink logit, which adds no
/// value (gpt-oss's attention sinks).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    kv: &LayerKv,
    shape: &AttentionShape,
    block_tables: &[&[BlockId]],
    places: &[TokenPlace],
    q: &[f32], // [num_tokens, num_attention_heads * head_dim]
    sinks: Option<&[f32]>,
    out: &mut [f32], // [num_tokens, num_attention_heads * head_dim]
) {
    let inputs = Inputs { kv, shape, block_tables, places, q, sinks };
    attention_with(inputs, out, None);
}

/// [`attention`], with segments run as separate items if `split_segments` says so (`None`:
/// when there are fewer (tile, KV head) items than threads). The results are the same.
fn attention_with(inputs: Inputs<'_>, out: &mut [f32], split_segments: Option<bool>) {
    let Inputs { shape, places, sinks, .. } = inputs;
    let pool = ThreadPool::global();
    let kv_heads = shape.num_key_value_heads;
    let group = shape.num_attention_heads / kv_heads;
    let bs = shape.block_size;
    // Small tiles when there are few tokens, so that every thread gets items (tiling does not
    // change the arithmetic); at most MAX_TILE_TOKENS.
    let max_tile = (places.len() * kv_heads / (4 * pool.num_threads())).clamp(1, MAX_TILE_TOKENS);
    PLAN.with_borrow_mut(|plan| {
        plan.tiles.clear();
        let mut start = 0;
        while start < places.len() {
            let sequence = places[start].sequence;
            let mut end = start + 1;
            while end < places.len() && end - start < max_tile && places[end].sequence == sequence {
                end += 1;
            }
            let tile_places = &places[start..end];
            let lo = tile_places.iter().map(|pl| first_position(shape, pl.position)).min();
            let hi = tile_places.iter().map(|pl| pl.position).max();
            let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(0));
            plan.tiles.push(Tile { start, end, first_block: lo / bs, last_block: hi / bs });
            start = end;
        }
        let tiles = &plan.tiles[..];
        let split = split_segments.unwrap_or_else(|| {
            tiles.len() * kv_heads < pool.num_threads()
                && tiles.iter().any(|tile| tile.segments().count() > 1)
        });
        if !split {
            let out = Mutex::new(out);
            pool.run(tiles.len() * kv_heads, &|item| {
                // Later tiles attend to more positions: hand them out first.
                let tile = tiles[tiles.len() - 1 - item / kv_heads];
                let kv_head = item % kv_heads;
                SCRATCH.with_borrow_mut(|scratch| {
                    attend(inputs, tile, kv_head, tile.segments(), scratch);
                    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
                    write_tile(shape, sinks, tile, kv_head, &scratch.total, &mut out);
                });
            });
            return;
        }

        plan.segments.clear();
        for (t, tile) in tiles.iter().enumerate() {
            plan.segments.extend(tile.segments().map(|segment| (t, segment)));
        }
        let num_items = plan.segments.len() * kv_heads;
        if plan.partials.len() < num_items {
            plan.partials.resize_with(num_items, Mutex::default);
        }
        let (segments, partials) = (&plan.segments[..], &plan.partials[..num_items]);
        pool.run(num_items, &|item| {
            let (t, segment) = segments[item / kv_heads];
            let kv_head = item % kv_heads;
            SCRATCH.with_borrow_mut(|scratch| {
                attend(inputs, tiles[t], kv_head, segment..=segment, scratch);
                let mut partial = partials[item].lock().unwrap_or_else(PoisonError::into_inner);
                partial.copy_from(&scratch.segment);
            });
        });
        // Merge each (tile, KV head)'s segments in order, as `attend` does.
        SCRATCH.with_borrow_mut(|scratch| {
            let mut first_item = 0;
            for tile in tiles {
                let num_segments = tile.segments().count();
                let num_rows = (tile.end - tile.start) * group;
                for kv_head in 0..kv_heads {
                    scratch.total.reset(num_rows, shape.head_dim);
                    for s in 0..num_segments {
                        let item = (first_item + s) * kv_heads + kv_head;
                        let partial = partials[item].lock().unwrap_or_else(PoisonError::into_inner);
                        scratch.total.merge(&partial, shape.head_dim);
                    }
                    write_tile(shape, sinks, *tile, kv_head, &scratch.total, out);
                }
                first_item += num_segments;
            }
        });
    });
}

/// Attention of `tile`'s queries of `kv_head`'s group over the positions in `segments`: each
/// segment's state is built in `scratch.segment`, then merged into `scratch.total`.
fn attend(
    inputs: Inputs<'_>,
    tile: Tile,
    kv_head: usize,
    segments: RangeInclusive<usize>,
    scratch: &mut Scratch,
) {
    let Inputs { kv, shape, block_tables, places, q, .. } = inputs;
    let hd = shape.head_dim;
    let bs = shape.block_size;
    let group = shape.num_attention_heads / shape.num_key_value_heads;
    let q_dim = shape.num_attention_heads * hd;
    let tile_places = &places[tile.start..tile.end];
    let table = block_tables[tile_places[0].sequence];
    let num_rows = tile_places.len() * group;
    // Scratch keys keep the transposed layout with rows padded to whole LANES.
    let stride = bs.next_multiple_of(LANES);

    let Scratch { queries, segment: state, total, keys, values, scores, scales } = scratch;
    queries.clear();
    for t in tile.start..tile.end {
        let heads = &q[t * q_dim + kv_head * group * hd..t * q_dim + (kv_head + 1) * group * hd];
        queries.extend(heads.iter().map(|&v| f16::from_f32(v).to_f32()));
    }
    keys.resize(hd * stride, 0.0);
    values.resize(bs * hd, 0.0);
    scores.resize(num_rows * stride, 0.0); // [num_rows, stride]
    total.reset(num_rows, hd);

    for segment in segments {
        state.reset(num_rows, hd);
        let RowStates { max, sum, acc } = state;
        let first_block = tile.first_block.max(segment * SEGMENT_BLOCKS);
        let last_block = tile.last_block.min(segment * SEGMENT_BLOCKS + SEGMENT_BLOCKS - 1);
        let blocks = &table[first_block..=last_block];
        for (block_index, &block) in (first_block..=last_block).zip(blocks) {
            let block_start = block_index * bs;
            let block_end = block_start + bs - 1;
            // This query's slots `from ..= to` of the block (the same whatever the tile), if any.
            let slots = |place: &TokenPlace| {
                let lo = first_position(shape, place.position);
                (place.position >= block_start && lo <= block_end).then(|| {
                    (lo.max(block_start) - block_start, place.position.min(block_end) - block_start)
                })
            };
            let Some((first, last)) =
                tile_places.iter().filter_map(slots).reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
            else {
                continue;
            };
            let base = head_offset(shape, block, kv_head);
            // All of the block's keys (lanes no query needs are computed and never used), and
            // the values of the slots that some query of the tile needs.
            load_keys(&kv.keys, base, hd, bs, stride, keys, scales);
            let needed = first * hd..(last + 1) * hd;
            load_values(&kv.values, base, hd, needed, values, scales);

            // Every row's scores against the block at once: the rows share each load of the keys.
            uma_kernels::vector::scores_transposed_many(
                queries,
                hd,
                keys,
                stride,
                shape.scale,
                scores,
            );
            for (ti, place) in tile_places.iter().enumerate() {
                let Some((from, to)) = slots(place) else { continue };
                for r in ti * group..(ti + 1) * group {
                    let scores = &mut scores[r * stride + from..=r * stride + to];
                    let acc = &mut acc[r * hd..(r + 1) * hd];
                    // Scores become weights in place.
                    uma_kernels::vector::online_softmax_update(
                        scores,
                        &mut max[r],
                        &mut sum[r],
                        acc,
                    );
                    uma_kernels::vector::accumulate_weighted(
                        acc,
                        scores,
                        &values[from * hd..(to + 1) * hd],
                    );
                }
            }
        }
        total.merge(state, hd);
    }
}

/// One KV head's keys of one block (at `base`, `[head_dim, block_size]`) into `keys`, f32 rows
/// of `stride` positions.
fn load_keys(
    tensor: &KvTensor,
    base: usize,
    hd: usize,
    bs: usize,
    stride: usize,
    keys: &mut [f32],
    scales: &mut Vec<f32>,
) {
    match tensor {
        KvTensor::F16(cache) => {
            let block_keys = &cache[base..base + hd * bs];
            if stride == bs {
                block_keys.convert_to_f32_slice(&mut keys[..hd * bs]);
            } else {
                for (src, dst) in block_keys.chunks_exact(bs).zip(keys.chunks_exact_mut(stride)) {
                    src.convert_to_f32_slice(&mut dst[..bs]);
                }
            }
        }
        KvTensor::Q8_0 { quants, scales: cache_scales } => {
            let num_scales = hd / Q8_0_GROUP * bs;
            scales.resize(num_scales, 0.0);
            let at = base / Q8_0_GROUP;
            cache_scales[at..at + num_scales].convert_to_f32_slice(scales);
            let quants = &quants[base..base + hd * bs];
            uma_kernels::vector::dequantize_q8_transposed(quants, scales, bs, stride, keys);
        }
    }
}

/// The elements `needed` of one KV head's values of one block (at `base`, `[block_size,
/// head_dim]`) into the same elements of `values`.
fn load_values(
    tensor: &KvTensor,
    base: usize,
    hd: usize,
    needed: std::ops::Range<usize>,
    values: &mut [f32],
    scales: &mut Vec<f32>,
) {
    let source = base + needed.start..base + needed.end;
    match tensor {
        KvTensor::F16(cache) => cache[source].convert_to_f32_slice(&mut values[needed]),
        KvTensor::Q8_0 { quants, scales: cache_scales } => {
            debug_assert!(hd.is_multiple_of(Q8_0_GROUP) && needed.start.is_multiple_of(hd));
            let groups = source.start / Q8_0_GROUP..source.end / Q8_0_GROUP;
            scales.resize(groups.len(), 0.0);
            cache_scales[groups].convert_to_f32_slice(scales);
            uma_kernels::vector::dequantize_q8_rows(&quants[source], scales, &mut values[needed]);
        }
    }
}

/// Positions whose scores one pass computes together.
const LANES: usize = uma_kernels::vector::LANES;

/// Normalises the tile's accumulated rows into its rows of `out`, with each head's sink logit
/// in the softmax's sum when there are sinks (as llama.cpp's flash attention adds it: after
/// every position, rescaling the values when the sink is the largest logit).
fn write_tile(
    shape: &AttentionShape,
    sinks: Option<&[f32]>,
    tile: Tile,
    kv_head: usize,
    state: &RowStates,
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let group = shape.num_attention_heads / shape.num_key_value_heads;
    let q_dim = shape.num_attention_heads * hd;
    for (ti, t) in (tile.start..tile.end).enumerate() {
        let dst =
            &mut out[t * q_dim + kv_head * group * hd..t * q_dim + (kv_head + 1) * group * hd];
        for (g, head_out) in dst.chunks_exact_mut(hd).enumerate() {
            let r = ti * group + g;
            let acc = &state.acc[r * hd..(r + 1) * hd];
            let (mut sum, mut value_scale) = (state.sum[r], 1.0f32);
            if let Some(sinks) = sinks {
                let (sink, max) = (sinks[kv_head * group + g], state.max[r]);
                if sink > max {
                    value_scale = (max - sink).exp();
                    sum = sum * value_scale + 1.0;
                } else {
                    sum += (sink - max).exp();
                }
            }
            if sum > 0.0 && value_scale == 1.0 {
                head_out.iter_mut().zip(acc).for_each(|(o, &a)| *o = a / sum);
            } else if sum > 0.0 {
                head_out.iter_mut().zip(acc).for_each(|(o, &a)| *o = (a * value_scale) / sum);
            } else {
                // No position to attend to (a window of 0).
                head_out.fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache_type::KvCacheType;

    /// Dense causal GQA in f64 over plain arrays, the textbook way.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        num_tokens: usize,
        heads: usize,
        kv_heads: usize,
        hd: usize,
        scale: f32,
        window: Option<usize>,
        sinks: Option<&[f32]>,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; num_tokens * heads * hd];
        for t in 0..num_tokens {
            for h in 0..heads {
                let kvh = h / (heads / kv_heads);
                let qh: Vec<f64> = q[(t * heads + h) * hd..(t * heads + h + 1) * hd]
                    .iter()
                    .map(|&x| f64::from(f16::from_f32(x).to_f32()))
                    .collect();
                let mut scores = Vec::new();
                let mut js = Vec::new();
                for j in 0..=t {
                    if window.is_some_and(|w| t - j >= w) {
                        continue;
                    }
                    let kj = &k[(j * kv_heads + kvh) * hd..(j * kv_heads + kvh + 1) * hd];
                    let s: f64 = qh.iter().zip(kj).map(|(&a, &b)| a * f64::from(b)).sum();
                    scores.push(s * f64::from(scale));
                    js.push(j);
                }
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sink = sinks.map(|s| f64::from(s[h]));
                let max = sink.map_or(max, |s| max.max(s));
                let sum: f64 = scores.iter().chain(&sink).map(|s| (s - max).exp()).sum();
                for d in 0..hd {
                    let mut acc = 0.0f64;
                    for (s, &j) in scores.iter().zip(&js) {
                        acc += (s - max).exp() / sum * f64::from(v[(j * kv_heads + kvh) * hd + d]);
                    }
                    out[(t * heads + h) * hd + d] = acc as f32;
                }
            }
        }
        out
    }

    #[test]
    fn paged_gqa_matches_dense_attention() {
        let (heads, kv_heads, hd, num_tokens, block_size) = (4, 2, 8, 11, 4);
        let kv_dim = kv_heads * hd;
        let value = |i: usize, salt: f32| (i as f32 * 0.731 + salt).sin() * 1.5;
        let q: Vec<f32> = (0..num_tokens * heads * hd).map(|i| value(i, 0.1)).collect();
        // K and V values exactly representable in f16, so the cache round trip is lossless.
        let k: Vec<f32> =
            (0..num_tokens * kv_dim).map(|i| f16::from_f32(value(i, 1.3)).to_f32()).collect();
        let v: Vec<f32> =
            (0..num_tokens * kv_dim).map(|i| f16::from_f32(value(i, 2.9)).to_f32()).collect();
        // Blocks out of order, with unused ones in between.
        let table = [BlockId(5), BlockId(1), BlockId(3)];
        let num_blocks = 6;
        for window in [None, Some(3)] {
            let shape = AttentionShape {
                num_attention_heads: heads,
                num_key_value_heads: kv_heads,
                head_dim: hd,
                scale: 0.35,
                window,
                block_size,
            };
            let mut kv = LayerKv::zeroed(KvCacheType::F16, num_blocks * block_size * kv_dim);
            for t in 0..num_tokens {
                let r = t * kv_dim..(t + 1) * kv_dim;
                write_kv(&mut kv, &shape, &table, t, &k[r.clone()], &v[r]);
            }
            let places: Vec<TokenPlace> =
                (0..num_tokens).map(|t| TokenPlace { sequence: 0, position: t }).collect();
            let mut out = vec![0.0f32; num_tokens * heads * hd];
            attention(&kv, &shape, &[&table], &places, &q, None, &mut out);
            let expected = naive(&q, &k, &v, num_tokens, heads, kv_heads, hd, 0.35, window, None);
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() < 1e-5, "window {window:?} at {i}: {a} vs {b}");
            }
        }
    }

    /// Sequences of several lengths in one paged cache, each with its own scrambled block table.
    struct Setup {
        shape: AttentionShape,
        kv: LayerKv,
        tables: Vec<Vec<BlockId>>,
        /// Per sequence: queries `[len, heads·hd]`, keys and values `[len, kv_dim]`.
        q: Vec<Vec<f32>>,
        k: Vec<Vec<f32>>,
        v: Vec<Vec<f32>>,
        /// Per query head, when the layer has attention sinks.
        sinks: Option<Vec<f32>>,
    }

    impl Setup {
        /// The expected keys and values are what a cache of `kv_type` holds (the f16 or Q8_0
        /// round trip of the written ones).
        fn new(
            kv_type: KvCacheType,
            heads: usize,
            kv_heads: usize,
            hd: usize,
            window: Option<usize>,
            block_size: usize,
            lens: &[usize],
        ) -> Self {
            let shape = AttentionShape {
                num_attention_heads: heads,
                num_key_value_heads: kv_heads,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt(),
                window,
                block_size,
            };
            let kv_dim = kv_heads * hd;
            let blocks_needed: Vec<usize> = lens.iter().map(|l| l.div_ceil(block_size)).collect();
            // Blocks handed out in a scrambled order, with a few never used.
            let num_blocks = blocks_needed.iter().sum::<usize>() + 3;
            // A stride prime to the count, so that every block is handed out once.
            let n = num_blocks as u32;
            let stride = [7, 11, 13].into_iter().find(|k| !n.is_multiple_of(*k)).expect("a stride");
            let mut free: Vec<u32> = (0..n).map(|i| (i * stride + 3) % n).collect();
            let mut kv = LayerKv::zeroed(kv_type, num_blocks * block_size * kv_dim);
            let value = |i: usize, salt: f32| (i as f32 * 0.731 + salt).sin() * 1.5;
            let (mut tables, mut qs, mut ks, mut vs) = (vec![], vec![], vec![], vec![]);
            for (s, (&len, &blocks)) in lens.iter().zip(&blocks_needed).enumerate() {
                let table: Vec<BlockId> = free.drain(..blocks).map(BlockId).collect();
                let salt = s as f32 * 0.37;
                let q: Vec<f32> = (0..len * heads * hd).map(|i| value(i, 0.1 + salt)).collect();
                let k: Vec<f32> = (0..len * kv_dim).map(|i| value(i, 1.3 + salt)).collect();
                let v: Vec<f32> = (0..len * kv_dim).map(|i| value(i, 2.9 + salt)).collect();
                for t in 0..len {
                    let r = t * kv_dim..(t + 1) * kv_dim;
                    write_kv(&mut kv, &shape, &table, t, &k[r.clone()], &v[r]);
                }
                let (k, v) = (stored(kv_type, &k), stored(kv_type, &v));
                tables.push(table);
                qs.push(q);
                ks.push(k);
                vs.push(v);
            }
            Setup { shape, kv, tables, q: qs, k: ks, v: vs, sinks: None }
        }

        /// The batch's queries, `[places.len(), heads·hd]`.
        fn queries(&self, places: &[TokenPlace]) -> Vec<f32> {
            let q_dim = self.shape.num_attention_heads * self.shape.head_dim;
            let mut q = Vec::with_capacity(places.len() * q_dim);
            for place in places {
                let p = place.position;
                q.extend_from_slice(&self.q[place.sequence][p * q_dim..(p + 1) * q_dim]);
            }
            q
        }

        /// Attention of the batch `places` through [`attention_with`], segments split as
        /// `split` says.
        fn run_with(&self, places: &[TokenPlace], split: Option<bool>) -> Vec<f32> {
            let q = self.queries(places);
            let tables: Vec<&[BlockId]> = self.tables.iter().map(|t| &t[..]).collect();
            let mut out = vec![0.0f32; q.len()];
            let sinks = self.sinks.as_deref();
            let (kv, shape) = (&self.kv, &self.shape);
            let inputs = Inputs { kv, shape, block_tables: &tables, places, q: &q, sinks };
            attention_with(inputs, &mut out, split);
            out
        }

        /// Attention of the batch `places` through [`attention`]; running segments in turn or
        /// split over threads gives the same bits.
        fn run(&self, places: &[TokenPlace]) -> Vec<f32> {
            let q = self.queries(places);
            let tables: Vec<&[BlockId]> = self.tables.iter().map(|t| &t[..]).collect();
            let mut out = vec![0.0f32; q.len()];
            let sinks = self.sinks.as_deref();
            attention(&self.kv, &self.shape, &tables, places, &q, sinks, &mut out);
            let in_turn = self.run_with(places, Some(false));
            let split = self.run_with(places, Some(true));
            for (i, ((a, b), c)) in out.iter().zip(&in_turn).zip(&split).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() && a.to_bits() == c.to_bits(),
                    "element {i}: {a} (auto), {b} (segments in turn), {c} (segments split)"
                );
            }
            out
        }

        /// Checks `places` against the dense f64 reference, to 1e-5.
        fn check(&self, what: &str, places: &[TokenPlace]) {
            let sh = &self.shape;
            let (heads, kv_heads, hd) =
                (sh.num_attention_heads, sh.num_key_value_heads, sh.head_dim);
            let q_dim = heads * hd;
            let expected: Vec<Vec<f32>> = (0..self.q.len())
                .map(|s| {
                    let len = self.k[s].len() / (kv_heads * hd);
                    naive(
                        &self.q[s],
                        &self.k[s],
                        &self.v[s],
                        len,
                        heads,
                        kv_heads,
                        hd,
                        sh.scale,
                        sh.window,
                        self.sinks.as_deref(),
                    )
                })
                .collect();
            let out = self.run(places);
            for (t, place) in places.iter().enumerate() {
                let p = place.position;
                let want = &expected[place.sequence][p * q_dim..(p + 1) * q_dim];
                for (i, (a, b)) in out[t * q_dim..(t + 1) * q_dim].iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "{what}, window {:?}: sequence {} position {p} element {i}: {a} vs {b}",
                        sh.window,
                        place.sequence
                    );
                }
            }
        }
    }

    /// What a cache of `kv_type` gives back for `data` (rows of whole heads): f16 rounding, or
    /// ggml's Q8_0 quantization and dequantization per 32 elements.
    fn stored(kv_type: KvCacheType, data: &[f32]) -> Vec<f32> {
        match kv_type {
            KvCacheType::F16 => data.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
            KvCacheType::Q8_0 => q8_0_groups(data)
                .flat_map(|block| {
                    let mut out = [0.0f32; Q8_0_GROUP];
                    block.dequantize(&mut out);
                    out
                })
                .collect(),
        }
    }

    impl Setup {
        /// Checks one decode token of every sequence (in reverse order, each at its last
        /// position), then every sequence's whole prefill in one batch.
        fn check_decode_and_prefill(&self, what: &str, lens: &[usize]) {
            let decode: Vec<TokenPlace> = (0..lens.len())
                .rev()
                .map(|s| TokenPlace { sequence: s, position: lens[s] - 1 })
                .collect();
            self.check(&format!("{what} decode"), &decode);
            let prefill: Vec<TokenPlace> =
                (0..lens.len()).flat_map(|s| places_of(s, 0..lens[s])).collect();
            self.check(&format!("{what} prefill"), &prefill);
        }
    }

    fn places_of(sequence: usize, positions: std::ops::Range<usize>) -> Vec<TokenPlace> {
        positions.map(|position| TokenPlace { sequence, position }).collect()
    }

    /// gpt-oss's sinks: a logit per head in every softmax, below, among and far above the
    /// scores (the last rescales the values), with and without a window.
    #[test]
    fn attention_sinks_match_dense_attention() {
        let lens = [1, 17, 70, 33];
        for (window, bs) in [(None, 16), (Some(5), 4), (Some(40), 16)] {
            let mut setup = Setup::new(KvCacheType::F16, 6, 2, 16, window, bs, &lens);
            setup.sinks = Some(vec![-30.0, -1.0, 0.0, 0.7, 2.5, 60.0]);
            setup.check_decode_and_prefill(&format!("sinks, blocks of {bs}"), &lens);
        }
    }

    #[test]
    fn long_sequences_in_one_batch_match_dense_attention() {
        let lens = [1, 17, 130, 100, 33, 16];
        // (heads, kv_heads, head_dim, block_size): GQA, MQA, MHA, a head size with a tail past
        // 8 lanes, and blocks smaller than a LANES pass. With blocks of 4, sequences span
        // several segments.
        for (heads, kv_heads, hd, bs) in [
            (6, 2, 16, 16),
            (4, 1, 8, 16),
            (3, 3, 12, 16),
            (14, 2, 64, 16),
            (6, 2, 16, 4),
            (2, 1, 24, 4),
        ] {
            for window in [None, Some(1), Some(5), Some(16), Some(40), Some(100), Some(512)] {
                let setup = Setup::new(KvCacheType::F16, heads, kv_heads, hd, window, bs, &lens);
                setup.check_decode_and_prefill("f16", &lens);
                // Prompt continuations (a chunk at the end of each sequence) next to decodes.
                let mut mixed = places_of(2, 90..130);
                mixed.extend(places_of(1, 16..17));
                mixed.extend(places_of(3, 37..100));
                mixed.extend(places_of(0, 0..1));
                mixed.extend(places_of(4, 20..33));
                setup.check("mixed", &mixed);
            }
        }
    }

    #[test]
    fn a_token_is_bit_identical_alone_or_batched() {
        let lens = [130, 45, 70];
        for (window, bs) in [(None, 16), (Some(20), 16), (None, 4), (Some(70), 4)] {
            let setup = Setup::new(KvCacheType::F16, 8, 2, 32, window, bs, &lens);
            let q_dim = 8 * 32;
            let batch: Vec<TokenPlace> =
                (0..lens.len()).flat_map(|s| places_of(s, 0..lens[s])).collect();
            let batched = setup.run(&batch);
            for (t, &place) in batch.iter().enumerate() {
                let alone = setup.run(&[place]);
                let row = &batched[t * q_dim..(t + 1) * q_dim];
                assert!(
                    row.iter().zip(&alone).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "window {window:?}, blocks of {bs}: {place:?} differs alone and batched"
                );
            }
        }
    }

    #[test]
    fn q8_0_cache_matches_dense_attention_over_its_values() {
        let lens = [1, 17, 130, 33];
        // (heads, kv_heads, head_dim, block_size): heads of 1, 2 and 4 Q8_0 groups, blocks
        // smaller and larger than a LANES pass.
        for (heads, kv_heads, hd, bs) in [(6, 2, 32, 16), (4, 1, 64, 4), (2, 2, 128, 16)] {
            for window in [None, Some(5), Some(40)] {
                let setup = Setup::new(KvCacheType::Q8_0, heads, kv_heads, hd, window, bs, &lens);
                setup.check_decode_and_prefill("q8_0", &lens);
            }
        }
    }

    #[test]
    fn q8_0_cache_holds_ggml_blocks_and_half_the_bytes() {
        let setup = Setup::new(KvCacheType::Q8_0, 4, 2, 64, None, 16, &[20]);
        let KvTensor::Q8_0 { quants, scales } = &setup.kv.values else {
            panic!("a q8_0 cache");
        };
        // Position 17 (block 1 of the table, slot 1), KV head 1: its value row is two blocks
        // exactly as ggml's quantize_row_q8_0 writes them.
        let (hd, bs, position, kv_head) = (64, 16, 17, 1);
        let block = setup.tables[0][position / bs];
        let base = head_offset(&setup.shape, block, kv_head);
        let value = |i: usize| (i as f32 * 0.731 + 2.9).sin() * 1.5;
        let row: Vec<f32> = (0..hd).map(|d| value(position * 2 * hd + kv_head * hd + d)).collect();
        let mut expected = vec![0u8; 2 * 34];
        uma_kernels::quantize(uma_gguf::GgmlType::Q8_0, &row, &mut expected).expect("quantize");
        for g in 0..2 {
            let at = base + (position % bs) * hd + g * Q8_0_GROUP;
            let scale = scales[base / Q8_0_GROUP + (position % bs) * 2 + g];
            assert_eq!(scale.to_le_bytes(), expected[g * 34..g * 34 + 2], "group {g} scale");
            let qs: Vec<u8> = quants[at..at + Q8_0_GROUP].iter().map(|&q| q as u8).collect();
            assert_eq!(qs, expected[g * 34 + 2..(g + 1) * 34], "group {g} quants");
        }
        assert_eq!(KvCacheType::Q8_0.bytes_for(64) * 2, KvCacheType::F16.bytes_for(64) + 8);
    }
}
