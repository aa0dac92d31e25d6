//! The logits processors, as plain functions over a logits row or a candidate list.
//!
//! Penalties edit the logits row in place (they touch only the tokens of the history). Truncation
//! (top-k, top-p, min-p) works on a reusable list of candidates instead, so the row keeps the
//! penalized logits that logprobs are computed from, and a 262k vocabulary is never fully sorted:
//! top-k is a selection, top-p a histogram over logit buckets that sorts only the bucket where the
//! cut falls. Every cut follows one total order (logit descending, then token id ascending).

use std::cmp::Ordering;

use crate::error::{Result, SamplingError};
use crate::TokenId;

/// One token still in the running, with its (penalized) logit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) token: TokenId,
    pub(crate) logit: f32,
}

/// Most likely first; equal logits by ascending token id, so every cut is deterministic.
pub(crate) fn by_logit_descending(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.token.cmp(&b.token))
}

/// NaN becomes `-inf` (never chosen) and `+inf` becomes `f32::MAX`, so that the rest of the chain
/// works on ordered, finite-or-`-inf` numbers and softmax never produces NaN.
pub(crate) fn sanitize_logits(logits: &mut [f32]) {
    // Branch-free so that it vectorizes.
    for logit in logits {
        *logit = if logit.is_nan() { f32::NEG_INFINITY } else { logit.min(f32::MAX) };
    }
}

/// Sorts `tokens` into `scratch` so that equal tokens are adjacent, checking the vocabulary range.
fn sorted_tokens<'s>(
    tokens: &[TokenId],
    vocab_size: usize,
    scratch: &'s mut Vec<TokenId>,
) -> Result<&'s [TokenId]> {
    scratch.clear();
    scratch.extend_from_slice(tokens);
    scratch.sort_unstable();
    if let Some(&token) = scratch.last() {
        if token as usize >= vocab_size {
            return Err(SamplingError::TokenOutOfVocabulary { token, vocab_size });
        }
    }
    Ok(scratch)
}

/// llama.cpp's repetition penalty: every distinct token of `tokens` once, positive logits divided
/// by `penalty`, negative (and zero) logits multiplied by it.
pub(crate) fn apply_repetition_penalty(
    logits: &mut [f32],
    tokens: &[TokenId],
    penalty: f32,
    scratch: &mut Vec<TokenId>,
) -> Result<()> {
    if penalty == 1.0 || tokens.is_empty() {
        return Ok(());
    }
    let sorted = sorted_tokens(tokens, logits.len(), scratch)?;
    let mut previous = None;
    for &token in sorted {
        if previous == Some(token) {
            continue;
        }
        previous = Some(token);
        let logit = &mut logits[token as usize];
        if *logit > 0.0 {
            *logit /= penalty;
        } else {
            *logit *= penalty;
        }
    }
    Ok(())
}

/// OpenAI's presence and frequency penalties:
/// `logit -= presence * (count > 0) + frequency * count`, counting occurrences in `tokens`.
pub(crate) fn apply_presence_frequency_penalty(
    logits: &mut [f32],
    tokens: &[TokenId],
    presence_penalty: f32,
    frequency_penalty: f32,
    scratch: &mut Vec<TokenId>,
) -> Result<()> {
    if (presence_penalty == 0.0 && frequency_penalty == 0.0) || tokens.is_empty() {
        return Ok(());
    }
    let sorted = sorted_tokens(tokens, logits.len(), scratch)?;
    for run in sorted.chunk_by(|a, b| a == b) {
        let count = run.len() as f32;
        logits[run[0] as usize] -= presence_penalty + frequency_penalty * count;
    }
    Ok(())
}

/// Index of the largest logit, lowest id on ties; `None` if every logit is `-inf` (or NaN).
pub fn argmax(logits: &[f32]) -> Option<TokenId> {
    let mut best_index = 0;
    let mut best_logit = f32::NEG_INFINITY;
    for (index, &logit) in logits.iter().enumerate() {
        // Strict `>`: ties keep the earlier (lower) id, NaN and -inf never win.
        if logit > best_logit {
            best_index = index;
            best_logit = logit;
        }
    }
    (best_logit > f32::NEG_INFINITY).then_some(best_index as TokenId)
}

/// `ln(sum(exp(logits)))`, with `exp` in f32 and the sum in f64; `-inf` when every logit is
/// `-inf`.
pub(crate) fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = logits.iter().map(|&logit| (logit - max).exp() as f64).sum();
    max as f64 + sum.ln()
}

/// The `n` largest finite logits as `(token, logit)`, most likely first, lowest id on ties.
pub(crate) fn top_n_logits(logits: &[f32], n: usize) -> Vec<(TokenId, f32)> {
    let mut best: Vec<(TokenId, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return best;
    }
    for (index, &logit) in logits.iter().enumerate() {
        if logit == f32::NEG_INFINITY || logit.is_nan() {
            continue;
        }
        if best.len() == n && logit <= best[n - 1].1 {
            continue;
        }
        // After existing entries with an equal logit: they have lower ids.
        let position = best.partition_point(|&(_, value)| value >= logit);
        best.insert(position, (index as TokenId, logit));
        best.truncate(n);
    }
    best
}

/// Every token with a logit above `-inf`, in token id order.
pub(crate) fn fill_candidates(logits: &[f32], candidates: &mut Vec<Candidate>) {
    candidates.clear();
    candidates.extend(
        logits
            .iter()
            .enumerate()
            .filter(|(_, &logit)| logit > f32::NEG_INFINITY)
            .map(|(index, &logit)| Candidate { token: index as TokenId, logit }),
    );
}

/// Keeps the `top_k` most likely candidates (`0` = all). Returns whether the order changed.
pub(crate) fn apply_top_k(candidates: &mut Vec<Candidate>, top_k: usize) -> bool {
    if top_k == 0 || top_k >= candidates.len() {
        return false;
    }
    candidates.select_nth_unstable_by(top_k - 1, by_logit_descending);
    candidates.truncate(top_k);
    true
}

fn max_logit(candidates: &[Candidate]) -> f32 {
    candidates.iter().map(|candidate| candidate.logit).fold(f32::NEG_INFINITY, f32::max)
}

/// Number of buckets [`apply_top_p`] sorts candidates into.
const NUM_TOP_P_BUCKETS: usize = 1024;
/// Logit range (below the best) the buckets cover; everything lower shares the last bucket. Its
/// weight is below `exp(-64)` of the best token's, so it is almost never needed.
const TOP_P_BUCKET_RANGE: f32 = 64.0;

/// Keeps the smallest prefix of the most likely candidates (by logit, then id) whose probability
/// (softmax at temperature 1 over the current candidates) reaches `top_p`; the candidate that
/// crosses `top_p` is kept. Keeps order, and does not sort the vocabulary: candidates are
/// histogrammed into logit buckets, whole buckets above the crossing one are kept, and only the
/// crossing bucket is sorted (into `scratch`).
pub(crate) fn apply_top_p(
    candidates: &mut Vec<Candidate>,
    top_p: f32,
    scratch: &mut Vec<Candidate>,
) {
    if top_p >= 1.0 || candidates.len() <= 1 {
        return;
    }
    let max = max_logit(candidates);
    let min = candidates.iter().map(|c| c.logit).fold(f32::INFINITY, f32::min);
    let range = (max - min).min(TOP_P_BUCKET_RANGE);
    let scale = if range > 0.0 { NUM_TOP_P_BUCKETS as f32 / range } else { 0.0 };
    let bucket_of = |c: &Candidate| (((max - c.logit) * scale) as usize).min(NUM_TOP_P_BUCKETS - 1);

    let mut bucket_mass = [0f64; NUM_TOP_P_BUCKETS];
    let mut total = 0f64;
    for candidate in candidates.iter() {
        let weight = (candidate.logit - max).exp() as f64;
        bucket_mass[bucket_of(candidate)] += weight;
        total += weight;
    }
    let target = top_p as f64 * total;

    // The bucket in which the cumulative mass reaches the target, and the mass before it.
    let mut cumulative = 0.0;
    let mut crossing_bucket = NUM_TOP_P_BUCKETS - 1;
    for (bucket, &mass) in bucket_mass.iter().enumerate() {
        if cumulative + mass >= target {
            crossing_bucket = bucket;
            break;
        }
        cumulative += mass;
    }

    scratch.clear();
    scratch.extend(candidates.iter().filter(|c| bucket_of(c) == crossing_bucket));
    scratch.sort_unstable_by(by_logit_descending);
    // Rounding can leave the sum a hair under `target`: then the whole bucket is kept.
    let mut last_kept = scratch.last().copied();
    for candidate in scratch.iter() {
        cumulative += (candidate.logit - max).exp() as f64;
        if cumulative >= target {
            last_kept = Some(*candidate);
            break;
        }
    }
    if let Some(last_kept) = last_kept {
        candidates.retain(|c| by_logit_descending(c, &last_kept) != Ordering::Greater);
    }
}

/// Drops candidates whose probability is below `min_p` times the best one's, i.e. whose logit is
/// below `max + ln(min_p)`. Keeps order.
pub(crate) fn apply_min_p(candidates: &mut Vec<Candidate>, min_p: f32) {
    if min_p <= 0.0 || candidates.is_empty() {
        return;
    }
    let threshold = max_logit(candidates) as f64 + (min_p as f64).ln();
    candidates.retain(|candidate| candidate.logit as f64 >= threshold);
}

/// Draws one candidate from `softmax(logit / temperature)` with `unit` uniform in `[0, 1)`,
/// walking the candidates in their current order. `weights` is scratch space.
pub(crate) fn draw_candidate(
    candidates: &[Candidate],
    temperature: f32,
    unit: f64,
    weights: &mut Vec<f32>,
) -> Option<TokenId> {
    let max = max_logit(candidates);
    weights.clear();
    // Division, not multiplication by the inverse: a tiny temperature has an infinite inverse,
    // and `0 * inf` would be NaN.
    weights.extend(candidates.iter().map(|c| ((c.logit - max) / temperature).exp()));
    let total: f64 = weights.iter().map(|&weight| weight as f64).sum();
    let target = unit * total;
    let mut cumulative = 0.0;
    let mut last_possible = None;
    for (candidate, &weight) in candidates.iter().zip(weights.iter()) {
        if weight > 0.0 {
            cumulative += weight as f64;
            last_possible = Some(candidate.token);
            if cumulative > target {
                return Some(candidate.token);
            }
        }
    }
    // Only reached when rounding puts `target` at the very end of the sum.
    last_possible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(logits: &[f32]) -> Vec<Candidate> {
        let mut out = Vec::new();
        fill_candidates(logits, &mut out);
        out
    }

    fn tokens(candidates: &[Candidate]) -> Vec<TokenId> {
        let mut tokens: Vec<TokenId> = candidates.iter().map(|c| c.token).collect();
        tokens.sort_unstable();
        tokens
    }

    fn assert_close(actual: f32, expected: f32) {
        assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
    }

    #[test]
    fn sanitize_replaces_nan_and_infinity() {
        let mut logits = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.5];
        sanitize_logits(&mut logits);
        assert_eq!(logits, [f32::NEG_INFINITY, f32::MAX, f32::NEG_INFINITY, 1.5]);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut logits = [2.0, -1.0, 0.0, 3.0, 4.0];
        let mut scratch = Vec::new();
        // Token 0 occurs twice but is penalized once.
        apply_repetition_penalty(&mut logits, &[0, 1, 0, 2], 2.0, &mut scratch).unwrap();
        assert_eq!(logits, [1.0, -2.0, 0.0, 3.0, 4.0]);
    }

    #[test]
    fn repetition_penalty_one_is_noop_and_checks_range() {
        let mut logits = [2.0, -1.0];
        let mut scratch = Vec::new();
        apply_repetition_penalty(&mut logits, &[0, 1], 1.0, &mut scratch).unwrap();
        assert_eq!(logits, [2.0, -1.0]);
        assert_eq!(
            apply_repetition_penalty(&mut logits, &[0, 2], 1.5, &mut scratch),
            Err(SamplingError::TokenOutOfVocabulary { token: 2, vocab_size: 2 })
        );
    }

    #[test]
    fn presence_and_frequency_penalties_match_hand_computation() {
        let mut logits = [1.0, 1.0, 1.0, 1.0];
        let mut scratch = Vec::new();
        // counts: token 0 → 3, token 2 → 1, tokens 1 and 3 → 0.
        apply_presence_frequency_penalty(&mut logits, &[0, 2, 0, 0], 0.5, 0.25, &mut scratch)
            .unwrap();
        assert_close(logits[0], 1.0 - 0.5 - 0.25 * 3.0);
        assert_close(logits[1], 1.0);
        assert_close(logits[2], 1.0 - 0.5 - 0.25);
        assert_close(logits[3], 1.0);
    }

    #[test]
    fn negative_penalties_encourage_repetition() {
        let mut logits = [0.0, 0.0];
        let mut scratch = Vec::new();
        apply_presence_frequency_penalty(&mut logits, &[1, 1], -1.0, -0.5, &mut scratch).unwrap();
        assert_eq!(logits, [0.0, 2.0]);
    }

    #[test]
    fn argmax_picks_lowest_id_on_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 0.5, f32::NAN]), Some(1));
        assert_eq!(argmax(&[-5.0, -5.0]), Some(0));
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NAN]), None);
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn log_sum_exp_matches_hand_computation() {
        let value = log_sum_exp(&[0.0, 0.0, 0.0, 0.0]);
        assert!((value - 4f64.ln()).abs() < 1e-12);
        let value = log_sum_exp(&[1000.0, 1000.0]);
        assert!((value - (1000.0 + 2f64.ln())).abs() < 1e-9);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY]), f64::NEG_INFINITY);
        let value = log_sum_exp(&[f32::NEG_INFINITY, 2.0]);
        assert!((value - 2.0).abs() < 1e-12);
    }

    #[test]
    fn top_n_logits_orders_and_breaks_ties_by_id() {
        let logits = [1.0, 5.0, 3.0, 5.0, f32::NEG_INFINITY, 3.0];
        assert_eq!(top_n_logits(&logits, 3), vec![(1, 5.0), (3, 5.0), (2, 3.0)]);
        assert_eq!(top_n_logits(&logits, 0), vec![]);
        // Asking for more than the finite logits returns only the finite ones.
        assert_eq!(top_n_logits(&logits, 10).len(), 5);
    }

    #[test]
    fn fill_candidates_drops_negative_infinity() {
        let list = candidates(&[0.0, f32::NEG_INFINITY, -1.0]);
        assert_eq!(tokens(&list), vec![0, 2]);
    }

    #[test]
    fn top_k_keeps_the_k_best_with_id_tie_break() {
        let mut list = candidates(&[1.0, 4.0, 2.0, 4.0, 3.0]);
        assert!(apply_top_k(&mut list, 3));
        assert_eq!(tokens(&list), vec![1, 3, 4]);

        let mut list = candidates(&[2.0, 2.0, 2.0]);
        apply_top_k(&mut list, 2);
        assert_eq!(tokens(&list), vec![0, 1]);

        let mut list = candidates(&[1.0, 2.0]);
        assert!(!apply_top_k(&mut list, 0));
        assert!(!apply_top_k(&mut list, 5));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn top_k_one_keeps_argmax() {
        let logits = [0.5, 2.0, 1.0, 2.0];
        let mut list = candidates(&logits);
        apply_top_k(&mut list, 1);
        assert_eq!(tokens(&list), vec![argmax(&logits).unwrap()]);
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their logs).
        let probabilities: [f32; 4] = [0.5, 0.25, 0.125, 0.125];
        let logits: Vec<f32> = probabilities.iter().map(|p| p.ln()).collect();

        let mut list = candidates(&logits);
        apply_top_p(&mut list, 0.5, &mut Vec::new());
        assert_eq!(tokens(&list), vec![0], "0.5 is reached by the first token");

        let mut list = candidates(&logits);
        apply_top_p(&mut list, 0.6, &mut Vec::new());
        assert_eq!(tokens(&list), vec![0, 1], "the crossing token is kept");

        let mut list = candidates(&logits);
        apply_top_p(&mut list, 0.8, &mut Vec::new());
        // Tokens 2 and 3 tie; the lower id is kept.
        assert_eq!(tokens(&list), vec![0, 1, 2]);

        let mut list = candidates(&logits);
        apply_top_p(&mut list, 1.0, &mut Vec::new());
        assert_eq!(list.len(), 4);
    }

    #[test]
    fn top_p_tiny_keeps_one() {
        let mut list = candidates(&[0.0, 0.0, 0.0]);
        apply_top_p(&mut list, 1e-9, &mut Vec::new());
        assert_eq!(tokens(&list), vec![0]);
    }

    #[test]
    fn top_p_on_large_vocabulary_needs_several_rounds() {
        // 10 000 equal logits: p = 0.5 keeps exactly the 5 000 lowest ids, past the first chunks.
        let logits = vec![0.0f32; 10_000];
        let mut list = candidates(&logits);
        apply_top_p(&mut list, 0.5, &mut Vec::new());
        assert_eq!(list.len(), 5_000);
        assert_eq!(tokens(&list), (0..5_000).collect::<Vec<_>>());
    }

    #[test]
    fn top_p_result_is_the_sorted_prefix() {
        // Compare with a full sort on a pseudo-random row.
        let logits: Vec<f32> =
            (0..3000u32).map(|i| ((i.wrapping_mul(2_654_435_761) % 1000) as f32) / 100.0).collect();
        for &top_p in &[0.1f32, 0.5, 0.9, 0.99] {
            let mut list = candidates(&logits);
            apply_top_p(&mut list, top_p, &mut Vec::new());

            let mut sorted = candidates(&logits);
            sorted.sort_by(by_logit_descending);
            let max = sorted[0].logit as f64;
            let total: f64 = sorted.iter().map(|c| (c.logit as f64 - max).exp()).sum();
            let mut cumulative = 0.0;
            let mut keep = sorted.len();
            for (index, c) in sorted.iter().enumerate() {
                cumulative += (c.logit as f64 - max).exp();
                if cumulative >= top_p as f64 * total {
                    keep = index + 1;
                    break;
                }
            }
            assert_eq!(tokens(&list), tokens(&sorted[..keep]), "top_p {top_p}");
        }
    }

    #[test]
    fn top_p_handles_extreme_logits() {
        // An outlier far below the rest must not collapse the buckets.
        let mut logits: Vec<f32> = (0..5000).map(|i| (i % 100) as f32 * 0.05).collect();
        logits[17] = -1e30;
        logits[18] = -f32::MAX;
        let mut list = candidates(&logits);
        apply_top_p(&mut list, 0.3, &mut Vec::new());
        assert!(!list.is_empty() && list.len() < 5000);
        assert!(list.iter().all(|c| c.logit > 0.0));

        let mut list = candidates(&[f32::MAX, -f32::MAX, 0.0]);
        apply_top_p(&mut list, 0.5, &mut Vec::new());
        assert_eq!(tokens(&list), vec![0]);
    }

    #[test]
    fn top_p_keeps_id_order() {
        let mut list = candidates(&[1.0, 3.0, 2.0, 3.0, 0.0]);
        apply_top_p(&mut list, 0.9, &mut Vec::new());
        let order: Vec<TokenId> = list.iter().map(|c| c.token).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted);
    }

    #[test]
    fn min_p_keeps_tokens_at_least_min_p_times_the_best() {
        // Probabilities 0.5, 0.3, 0.15, 0.05: relative to the best 1, 0.6, 0.3, 0.1.
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let mut list = candidates(&logits);
        apply_min_p(&mut list, 0.25);
        assert_eq!(tokens(&list), vec![0, 1, 2]);

        let mut list = candidates(&logits);
        apply_min_p(&mut list, 0.5);
        assert_eq!(tokens(&list), vec![0, 1]);

        let mut list = candidates(&logits);
        apply_min_p(&mut list, 0.0);
        assert_eq!(list.len(), 4, "0 is a no-op");

        let mut list = candidates(&[1.0, 3.0, 3.0]);
        apply_min_p(&mut list, 1.0);
        assert_eq!(tokens(&list), vec![1, 2], "1 keeps only the ties of the best");
    }

    #[test]
    fn draw_candidate_walks_the_cumulative_distribution() {
        // Probabilities 0.25, 0.5, 0.25.
        let list = candidates(&[0.0, 2f32.ln(), 0.0]);
        let mut weights = Vec::new();
        assert_eq!(draw_candidate(&list, 1.0, 0.0, &mut weights), Some(0));
        assert_eq!(draw_candidate(&list, 1.0, 0.24, &mut weights), Some(0));
        assert_eq!(draw_candidate(&list, 1.0, 0.26, &mut weights), Some(1));
        assert_eq!(draw_candidate(&list, 1.0, 0.74, &mut weights), Some(1));
        assert_eq!(draw_candidate(&list, 1.0, 0.76, &mut weights), Some(2));
        assert_eq!(draw_candidate(&list, 1.0, 1.0 - 1e-16, &mut weights), Some(2));
    }

    #[test]
    fn draw_candidate_applies_temperature() {
        // Logits ln(1), ln(3): at temperature 0.5 the weights are 1 and 9 → 0.1 and 0.9.
        let list = candidates(&[0.0, 3f32.ln()]);
        let mut weights = Vec::new();
        assert_eq!(draw_candidate(&list, 0.5, 0.09, &mut weights), Some(0));
        assert_eq!(draw_candidate(&list, 0.5, 0.11, &mut weights), Some(1));
        // At temperature 2 the weights are 1 and sqrt(3): token 0 has 1/(1+1.732) ≈ 0.366.
        assert_eq!(draw_candidate(&list, 2.0, 0.36, &mut weights), Some(0));
        assert_eq!(draw_candidate(&list, 2.0, 0.37, &mut weights), Some(1));
    }

    #[test]
    fn draw_candidate_with_tiny_temperature_is_greedy() {
        let list = candidates(&[1.0, 2.0, 1.5]);
        let mut weights = Vec::new();
        for temperature in [1e-6, 1e-40, f32::MIN_POSITIVE] {
            assert_eq!(draw_candidate(&list, temperature, 0.999, &mut weights), Some(1));
        }
    }

    #[test]
    fn draw_candidate_never_picks_zero_weight_tokens() {
        // Token 0's weight underflows to 0 at this temperature.
        let list = candidates(&[-1000.0, 0.0]);
        let mut weights = Vec::new();
        assert_eq!(draw_candidate(&list, 0.01, 0.0, &mut weights), Some(1));
    }
}
