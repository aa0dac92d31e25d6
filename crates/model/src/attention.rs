//! Grouped-query attention over the paged KV cache: each query token attends to its own
//! sequence's positions `lo ..= p` (`lo = p + 1 − window` on sliding-window layers, else 0),
//! reading keys and values through the sequence's block table.
//!
//! Arithmetic as llama.cpp with an f16 cache: the query is rounded to f16 (ggml converts it to
//! the cache's type for the `K·q` dot product), scores `(q·k) · scale` in f32, softmax in f32
//! with an f64 sum, values accumulated in f32.

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::kv_cache::{BlockId, LayerKv};
use crate::layers::{dot, softmax_in_place};

/// Where one batch token sits: its sequence and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenPlace {
    pub(crate) sequence: usize,
    pub(crate) position: usize,
}

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

/// Per-thread buffers.
#[derive(Default)]
struct Scratch {
    keys: Vec<f32>,   // [num_positions, head_dim]
    values: Vec<f32>, // [num_positions, head_dim]
    scores: Vec<f32>, // [num_positions]
    query: Vec<f32>,  // [head_dim]
}

/// Offset of `(position, kv_head)` in a layer's K or V tensor.
#[inline]
fn slot_offset(
    shape: &AttentionShape,
    block_table: &[BlockId],
    position: usize,
    kv_head: usize,
) -> usize {
    let block = block_table[position / shape.block_size].index();
    let slot = block * shape.block_size + position % shape.block_size;
    (slot * shape.num_key_value_heads + kv_head) * shape.head_dim
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
    let kv_dim = shape.num_key_value_heads * shape.head_dim;
    let start = slot_offset(shape, block_table, position, 0);
    kv.keys[start..start + kv_dim].convert_from_f32_slice(keys);
    kv.values[start..start + kv_dim].convert_from_f32_slice(values);
}

/// `out[t]` = attention of token `t` (queries `q[t]`, `[num_attention_heads · head_dim]`) over
/// its sequence's cached keys and values, for every token of the batch.
pub(crate) fn attention(
    kv: &LayerKv,
    shape: &AttentionShape,
    block_tables: &[&[BlockId]],
    places: &[TokenPlace],
    q: &[f32],       // [num_tokens, num_attention_heads * head_dim]
    out: &mut [f32], // [num_tokens, num_attention_heads * head_dim]
) {
    let hd = shape.head_dim;
    let group = shape.num_attention_heads / shape.num_key_value_heads;
    let q_dim = shape.num_attention_heads * hd;
    out.par_chunks_mut(group * hd).enumerate().for_each_init(Scratch::default, |s, (i, dst)| {
        let t = i / shape.num_key_value_heads;
        let kv_head = i % shape.num_key_value_heads;
        let place = places[t];
        let table = block_tables[place.sequence];
        let p = place.position;
        let lo = shape.window.map_or(0, |w| (p + 1).saturating_sub(w));
        let n = p + 1 - lo;
        s.keys.resize(n * hd, 0.0);
        s.values.resize(n * hd, 0.0);
        for (j, position) in (lo..=p).enumerate() {
            let at = slot_offset(shape, table, position, kv_head);
            kv.keys[at..at + hd].convert_to_f32_slice(&mut s.keys[j * hd..(j + 1) * hd]);
            kv.values[at..at + hd].convert_to_f32_slice(&mut s.values[j * hd..(j + 1) * hd]);
        }
        for (g, head_out) in dst.chunks_exact_mut(hd).enumerate() {
            let h = kv_head * group + g;
            let q_head = &q[t * q_dim + h * hd..t * q_dim + (h + 1) * hd];
            s.query.clear();
            s.query.extend(q_head.iter().map(|&v| f16::from_f32(v).to_f32()));
            s.scores.clear();
            for j in 0..n {
                s.scores.push(dot(&s.query, &s.keys[j * hd..(j + 1) * hd]) * shape.scale);
            }
            softmax_in_place(&mut s.scores);
            head_out.fill(0.0);
            for (j, &weight) in s.scores.iter().enumerate() {
                for (o, &v) in head_out.iter_mut().zip(&s.values[j * hd..(j + 1) * hd]) {
                    *o += weight * v;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
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
            let mut kv = LayerKv {
                keys: vec![f16::ZERO; num_blocks * block_size * kv_dim],
                values: vec![f16::ZERO; num_blocks * block_size * kv_dim],
            };
            for t in 0..num_tokens {
                let r = t * kv_dim..(t + 1) * kv_dim;
                write_kv(&mut kv, &shape, &table, t, &k[r.clone()], &v[r]);
            }
            let places: Vec<TokenPlace> =
                (0..num_tokens).map(|t| TokenPlace { sequence: 0, position: t }).collect();
            let mut out = vec![0.0f32; num_tokens * heads * hd];
            attention(&kv, &shape, &[&table], &places, &q, &mut out);
            let expected = naive(&q, &k, &v, num_tokens, heads, kv_heads, hd, 0.35, window);
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() < 1e-5, "window {window:?} at {i}: {a} vs {b}");
            }
        }
    }
}
