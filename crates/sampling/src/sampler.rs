//! The per-sequence sampler: penalties, truncation, temperature, a seeded draw and logprobs.

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

use crate::error::{Result, SamplingError};
use crate::processors::{
    apply_min_p, apply_presence_frequency_penalty, apply_repetition_penalty, apply_top_k,
    apply_top_p, argmax, draw_candidate, fill_candidates, log_sum_exp, sanitize_logits,
    top_n_logits, Candidate,
};
use crate::sampling_params::{PenaltyScope, SamplingParams};
use crate::token_history::TokenHistory;
use crate::TokenId;

/// The token chosen for one sequence in one step.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledToken {
    /// The chosen token.
    pub token: TokenId,
    /// Its log-probability (see [`Sampler`] for which distribution); `None` unless the
    /// parameters ask for logprobs.
    pub logprob: Option<f32>,
    /// The `logprobs` most likely tokens and their log-probabilities, most likely first, lowest id
    /// on ties; tokens with probability 0 (`-inf` logits) are left out. Empty unless asked for.
    pub top_logprobs: Vec<(TokenId, f32)>,
}

/// Samples the tokens of one sequence; owns its random number generator.
///
/// # Processing chain
///
/// For every step, on the sequence's logits row (`[vocab_size]`):
///
/// 1. NaN logits become `-inf` (never chosen), `+inf` becomes `f32::MAX`.
/// 2. Penalties, in place: repetition penalty over the last `repeat_last_n` tokens of prompt +
///    generation, then presence/frequency penalties over the tokens chosen by
///    [`PenaltyScope`] (generated tokens by default).
/// 3. Logprobs, if asked for: `log_softmax` of the penalized logits at temperature 1, before
///    truncation. This is the distribution of the model as shaped by the request's penalties; it does
///    not depend on temperature, top-k, top-p or min-p, so the chosen token's logprob is always
///    finite and greedy and sampled runs report the same numbers (OpenAI reports the model's
///    distribution; vLLM's default reports raw logits before penalties).
/// 4. Greedy (temperature 0 or top-k 1): argmax, lowest id on ties. No random number is drawn.
/// 5. Otherwise top-k → top-p → min-p (llama.cpp's default order; top-p and min-p therefore see
///    the temperature-1 distribution), then one uniform draw from `softmax(logit / temperature)`
///    over the remaining tokens, walked in token id order.
///
/// # Reproducibility
///
/// The generator is ChaCha20 (`rand_chacha`), keyed from the seed by SplitMix64 written out in
/// this crate, and each non-greedy step uses exactly one 64-bit output. ChaCha20 is a fixed,
/// specified algorithm and every cut in the chain has a total order (logit, then token id), so a
/// given seed, parameters and logits give the same tokens on every platform and version. The only
/// caveat is `exp` from the platform's math library, which may differ in the last bit: a draw that
/// falls within that rounding of a boundary could differ. Without a seed, one is taken from the
/// operating system and is available from [`Sampler::seed`] to replay the run.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    seed: u64,
    rng: ChaCha20Rng,
    // Reused every step so that sampling does not allocate per token.
    candidates: Vec<Candidate>,
    weights: Vec<f32>,
    top_p_scratch: Vec<Candidate>,
    penalty_scratch: Vec<TokenId>,
}

impl Sampler {
    /// A sampler for `params` (validated here), seeded from `params.seed` or the OS.
    pub fn new(params: &SamplingParams) -> Result<Self> {
        Self::with_stream(params, 0)
    }

    /// Like [`Sampler::new`] but on ChaCha stream `stream` of the same seed: a request with `n`
    /// choices and one seed gives choice `i` stream `i`, so the choices differ yet each one is
    /// reproducible. Stream 0 is what [`Sampler::new`] uses.
    pub fn with_stream(params: &SamplingParams, stream: u64) -> Result<Self> {
        params.validate()?;
        let seed = match params.seed {
            Some(seed) => seed,
            None => {
                let mut bytes = [0u8; 8];
                OsRng
                    .try_fill_bytes(&mut bytes)
                    .map_err(|error| SamplingError::Entropy { message: error.to_string() })?;
                u64::from_le_bytes(bytes)
            }
        };
        let mut rng = ChaCha20Rng::from_seed(chacha_key_from_seed(seed));
        rng.set_stream(stream);
        Ok(Self {
            params: params.clone(),
            seed,
            rng,
            candidates: Vec::new(),
            weights: Vec::new(),
            top_p_scratch: Vec::new(),
            penalty_scratch: Vec::new(),
        })
    }

    /// The seed in use: `params.seed`, or the one drawn from the OS.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The parameters this sampler was built with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Chooses the next token from `logits` (`[vocab_size]`), given the sequence's tokens so far.
    ///
    /// `logits` is edited in place: afterwards it holds the sanitized, penalized logits (the
    /// ones logprobs are computed from). Truncation and temperature do not touch it.
    ///
    /// Errors: an empty row, a history token outside the vocabulary, or no finite logit.
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        history: TokenHistory<'_>,
    ) -> Result<SampledToken> {
        if logits.is_empty() {
            return Err(SamplingError::EmptyLogits);
        }
        sanitize_logits(logits);
        self.apply_penalties(logits, history)?;

        let token = if self.params.is_greedy() {
            argmax(logits).ok_or(SamplingError::NoCandidates)?
        } else {
            self.draw(logits)?
        };

        let (logprob, top_logprobs) = match self.params.logprobs {
            None => (None, Vec::new()),
            Some(num_top) => {
                let normalizer = log_sum_exp(logits);
                let logprob = (logits[token as usize] as f64 - normalizer) as f32;
                let top = top_n_logits(logits, num_top as usize)
                    .into_iter()
                    .map(|(token, logit)| (token, (logit as f64 - normalizer) as f32))
                    .collect();
                (Some(logprob), top)
            }
        };
        Ok(SampledToken { token, logprob, top_logprobs })
    }

    fn apply_penalties(&mut self, logits: &mut [f32], history: TokenHistory<'_>) -> Result<()> {
        let params = &self.params;
        let window = match params.repeat_last_n {
            -1 => history.tokens(),
            n => history.last_n(usize::try_from(n).expect("validate() rejects values below -1")),
        };
        apply_repetition_penalty(
            logits,
            window,
            params.repetition_penalty,
            &mut self.penalty_scratch,
        )?;
        let counted = match params.presence_frequency_scope {
            PenaltyScope::GeneratedTokens => history.generated(),
            PenaltyScope::RepeatWindow => window,
        };
        apply_presence_frequency_penalty(
            logits,
            counted,
            params.presence_penalty,
            params.frequency_penalty,
            &mut self.penalty_scratch,
        )
    }

    fn draw(&mut self, logits: &[f32]) -> Result<TokenId> {
        fill_candidates(logits, &mut self.candidates);
        if self.candidates.is_empty() {
            return Err(SamplingError::NoCandidates);
        }
        let top_k = usize::try_from(self.params.top_k).expect("validate() rejects negative top_k");
        let reordered = apply_top_k(&mut self.candidates, top_k);
        apply_top_p(&mut self.candidates, self.params.top_p, &mut self.top_p_scratch);
        apply_min_p(&mut self.candidates, self.params.min_p);
        if reordered {
            // Token id order makes the draw independent of how the selection shuffled the
            // candidates (that is an implementation detail of the standard library).
            self.candidates.sort_unstable_by_key(|candidate| candidate.token);
        }
        let unit = unit_from_u64(self.rng.next_u64());
        draw_candidate(&self.candidates, self.params.temperature, unit, &mut self.weights)
            .ok_or(SamplingError::NoCandidates)
    }
}

/// A uniform number in `[0, 1)` from the top 53 bits.
fn unit_from_u64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Expands a 64-bit seed into a ChaCha key with SplitMix64 (written here rather than relying on
/// `SeedableRng::seed_from_u64`, so the mapping can never change under us).
fn chacha_key_from_seed(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut key = [0u8; 32];
    for chunk in key.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: u64) -> SamplingParams {
        SamplingParams { seed: Some(seed), ..SamplingParams::default() }
    }

    fn draw_many(params: &SamplingParams, logits: &[f32], num_draws: usize) -> Vec<TokenId> {
        let mut sampler = Sampler::new(params).unwrap();
        (0..num_draws)
            .map(|_| sampler.sample(&mut logits.to_vec(), TokenHistory::default()).unwrap().token)
            .collect()
    }

    fn uniform_logits(vocab_size: usize) -> Vec<f32> {
        vec![0.0; vocab_size]
    }

    /// Pearson's chi-square statistic of `counts` against `probabilities`.
    fn chi_square(counts: &[usize], probabilities: &[f64]) -> f64 {
        let total: usize = counts.iter().sum();
        counts
            .iter()
            .zip(probabilities)
            .map(|(&count, &p)| {
                let expected = p * total as f64;
                (count as f64 - expected).powi(2) / expected
            })
            .sum()
    }

    fn histogram(tokens: &[TokenId], vocab_size: usize) -> Vec<usize> {
        let mut counts = vec![0; vocab_size];
        for &token in tokens {
            counts[token as usize] += 1;
        }
        counts
    }

    #[test]
    fn new_validates_params() {
        let params = SamplingParams { top_p: 0.0, ..SamplingParams::default() };
        assert!(matches!(
            Sampler::new(&params),
            Err(SamplingError::InvalidParameter { name: "top_p", .. })
        ));
    }

    #[test]
    fn same_seed_same_tokens_over_1000_draws() {
        let logits = uniform_logits(1000);
        let first = draw_many(&seeded(1234), &logits, 1000);
        let second = draw_many(&seeded(1234), &logits, 1000);
        assert_eq!(first, second);
        let other = draw_many(&seeded(1235), &logits, 1000);
        assert_ne!(first, other);
        // And the draws are not degenerate.
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 500, "{} distinct tokens", distinct.len());
    }

    #[test]
    fn seeded_draws_are_pinned() {
        // Golden values: if this changes, seeds no longer reproduce earlier generations.
        let tokens = draw_many(&seeded(42), &uniform_logits(1000), 10);
        assert_eq!(tokens, PINNED_SEED_42);
    }
    const PINNED_SEED_42: [TokenId; 10] = [37, 891, 172, 622, 957, 319, 889, 450, 633, 750];

    #[test]
    fn seed_expansion_is_splitmix64() {
        // Published SplitMix64 outputs for state 0: 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
        let key = chacha_key_from_seed(0);
        assert_eq!(key[..8], 0xe220_a839_7b1d_cdafu64.to_le_bytes());
        assert_eq!(key[8..16], 0x6e78_9e6a_a1b9_65f4u64.to_le_bytes());
    }

    #[test]
    fn unit_interval_covers_zero_and_stays_below_one() {
        assert_eq!(unit_from_u64(0), 0.0);
        assert!(unit_from_u64(u64::MAX) < 1.0);
        assert_eq!(unit_from_u64(1 << 63), 0.5);
    }

    #[test]
    fn streams_differ_and_stream_zero_is_new() {
        let logits = uniform_logits(1000);
        let params = seeded(9);
        let mut stream_zero = Sampler::with_stream(&params, 0).unwrap();
        let mut stream_one = Sampler::with_stream(&params, 1).unwrap();
        let zero: Vec<TokenId> = (0..100)
            .map(|_| {
                stream_zero.sample(&mut logits.clone(), TokenHistory::default()).unwrap().token
            })
            .collect();
        let one: Vec<TokenId> = (0..100)
            .map(|_| stream_one.sample(&mut logits.clone(), TokenHistory::default()).unwrap().token)
            .collect();
        assert_eq!(zero, draw_many(&params, &logits, 100));
        assert_ne!(zero, one);
    }

    #[test]
    fn unseeded_samplers_report_their_seed() {
        let first = Sampler::new(&SamplingParams::default()).unwrap();
        let second = Sampler::new(&SamplingParams::default()).unwrap();
        assert_ne!(first.seed(), second.seed());
        // Replaying with the reported seed gives the same tokens.
        let logits = uniform_logits(1000);
        let mut original = first;
        let replay = seeded(original.seed());
        let tokens: Vec<TokenId> = (0..50)
            .map(|_| original.sample(&mut logits.clone(), TokenHistory::default()).unwrap().token)
            .collect();
        assert_eq!(tokens, draw_many(&replay, &logits, 50));
    }

    #[test]
    fn temperature_one_matches_the_softmax_distribution() {
        let probabilities = [0.1, 0.2, 0.3, 0.4];
        let logits: Vec<f32> = probabilities.iter().map(|&p: &f64| p.ln() as f32).collect();
        let tokens = draw_many(&seeded(7), &logits, 100_000);
        let statistic = chi_square(&histogram(&tokens, 4), &probabilities);
        // 3 degrees of freedom, p = 0.001 critical value.
        assert!(statistic < 16.27, "chi-square {statistic}");
    }

    #[test]
    fn temperature_sharpens_the_distribution() {
        // Temperature 0.5 squares the probabilities: 1, 4, 9, 16 over 30.
        let logits: Vec<f32> = [0.1f64, 0.2, 0.3, 0.4].iter().map(|p| p.ln() as f32).collect();
        let params = SamplingParams { temperature: 0.5, ..seeded(11) };
        let tokens = draw_many(&params, &logits, 100_000);
        let expected = [1.0 / 30.0, 4.0 / 30.0, 9.0 / 30.0, 16.0 / 30.0];
        let statistic = chi_square(&histogram(&tokens, 4), &expected);
        assert!(statistic < 16.27, "chi-square {statistic}");
    }

    #[test]
    fn truncated_distribution_is_renormalized() {
        // top-k 2 over 0.1, 0.2, 0.3, 0.4 leaves 0.3 and 0.4 → 3/7 and 4/7.
        let logits: Vec<f32> = [0.1f64, 0.2, 0.3, 0.4].iter().map(|p| p.ln() as f32).collect();
        let params = SamplingParams { top_k: 2, ..seeded(13) };
        let tokens = draw_many(&params, &logits, 50_000);
        let counts = histogram(&tokens, 4);
        assert_eq!(counts[0] + counts[1], 0);
        let statistic = chi_square(&counts[2..], &[3.0 / 7.0, 4.0 / 7.0]);
        // 1 degree of freedom, p = 0.001.
        assert!(statistic < 10.83, "chi-square {statistic}");
    }

    #[test]
    fn greedy_is_argmax_with_lowest_id_and_draws_no_random_number() {
        let params = SamplingParams { seed: Some(1), ..SamplingParams::greedy() };
        let mut sampler = Sampler::new(&params).unwrap();
        let mut logits = vec![0.0, 2.0, 5.0, 5.0, 1.0];
        let sampled = sampler.sample(&mut logits, TokenHistory::default()).unwrap();
        assert_eq!(sampled, SampledToken { token: 2, logprob: None, top_logprobs: vec![] });
        // top_k = 1 at any temperature is greedy too.
        let params = SamplingParams { top_k: 1, temperature: 5.0, ..seeded(1) };
        let tokens = draw_many(&params, &[0.0, 2.0, 5.0, 5.0, 1.0], 20);
        assert!(tokens.iter().all(|&token| token == 2));
    }

    #[test]
    fn nan_logits_are_never_chosen() {
        for params in [SamplingParams::greedy(), seeded(3)] {
            let mut sampler = Sampler::new(&params).unwrap();
            for _ in 0..100 {
                let mut logits = vec![f32::NAN, 0.0, f32::NAN, 0.0];
                let token = sampler.sample(&mut logits, TokenHistory::default()).unwrap().token;
                assert!(token == 1 || token == 3);
            }
        }
    }

    #[test]
    fn all_masked_logits_are_an_error_not_a_panic() {
        for params in [SamplingParams::greedy(), seeded(3)] {
            let mut sampler = Sampler::new(&params).unwrap();
            let mut logits = vec![f32::NAN, f32::NEG_INFINITY];
            assert_eq!(
                sampler.sample(&mut logits, TokenHistory::default()),
                Err(SamplingError::NoCandidates)
            );
            assert_eq!(
                sampler.sample(&mut [], TokenHistory::default()),
                Err(SamplingError::EmptyLogits)
            );
        }
    }

    #[test]
    fn infinite_logit_wins() {
        let mut sampler = Sampler::new(&seeded(5)).unwrap();
        for _ in 0..50 {
            let mut logits = vec![100.0, f32::INFINITY, 100.0];
            assert_eq!(sampler.sample(&mut logits, TokenHistory::default()).unwrap().token, 1);
        }
    }

    #[test]
    fn logprobs_are_log_softmax_of_penalized_logits() {
        let params = SamplingParams { logprobs: Some(3), ..SamplingParams::greedy() };
        let mut sampler = Sampler::new(&params).unwrap();
        let mut logits = vec![1.0, 2.0, 3.0, 0.5];
        let sampled = sampler.sample(&mut logits, TokenHistory::default()).unwrap();
        let normalizer: f64 = [1.0f64, 2.0, 3.0, 0.5].iter().map(|l| l.exp()).sum::<f64>().ln();
        assert_eq!(sampled.token, 2);
        assert!((sampled.logprob.unwrap() as f64 - (3.0 - normalizer)).abs() < 1e-6);
        let top: Vec<TokenId> = sampled.top_logprobs.iter().map(|&(token, _)| token).collect();
        assert_eq!(top, vec![2, 1, 0]);
        for &(token, logprob) in &sampled.top_logprobs {
            let expected = [1.0, 2.0, 3.0, 0.5][token as usize] - normalizer;
            assert!((logprob as f64 - expected).abs() < 1e-6);
        }
    }

    #[test]
    fn logprobs_sum_to_one_and_ignore_temperature_and_truncation() {
        let logits: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let reference = {
            let params = SamplingParams { logprobs: Some(10), ..SamplingParams::greedy() };
            Sampler::new(&params).unwrap().sample(&mut logits.clone(), TokenHistory::default())
        }
        .unwrap();
        let total: f64 = reference.top_logprobs.iter().map(|&(_, lp)| (lp as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");

        let params = SamplingParams {
            temperature: 0.3,
            top_k: 3,
            top_p: 0.5,
            logprobs: Some(10),
            ..seeded(21)
        };
        let mut sampler = Sampler::new(&params).unwrap();
        for _ in 0..20 {
            let sampled = sampler.sample(&mut logits.clone(), TokenHistory::default()).unwrap();
            assert_eq!(sampled.top_logprobs, reference.top_logprobs);
            let expected = reference
                .top_logprobs
                .iter()
                .find(|&&(token, _)| token == sampled.token)
                .map(|&(_, logprob)| logprob);
            assert_eq!(sampled.logprob, expected);
        }
    }

    #[test]
    fn logprobs_zero_gives_only_the_chosen_token() {
        let params = SamplingParams { logprobs: Some(0), ..SamplingParams::greedy() };
        let sampled = Sampler::new(&params)
            .unwrap()
            .sample(&mut [0.0, 0.0], TokenHistory::default())
            .unwrap();
        assert!((sampled.logprob.unwrap() - 0.5f32.ln()).abs() < 1e-6);
        assert!(sampled.top_logprobs.is_empty());
    }

    #[test]
    fn penalties_use_their_documented_token_sets() {
        // Prompt [0], generated [1, 1]; repetition window covers both.
        let tokens = [0, 1, 1];
        let history = TokenHistory::new(&tokens, 1);
        let params = SamplingParams {
            repetition_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..SamplingParams::greedy()
        };
        let mut logits = vec![4.0, 4.0, 4.0];
        Sampler::new(&params).unwrap().sample(&mut logits, history).unwrap();
        // Token 0: prompt only → repetition only: 4 / 2.
        // Token 1: repetition then presence + 2 × frequency: 4 / 2 - 0.5 - 0.5.
        assert_eq!(logits, vec![2.0, 1.0, 4.0]);

        // With the llama.cpp scope, presence/frequency also count the prompt token.
        let params =
            SamplingParams { presence_frequency_scope: PenaltyScope::RepeatWindow, ..params };
        let mut logits = vec![4.0, 4.0, 4.0];
        Sampler::new(&params).unwrap().sample(&mut logits, history).unwrap();
        assert_eq!(logits, vec![1.25, 1.0, 4.0]);
    }

    #[test]
    fn repeat_last_n_limits_the_window() {
        let tokens = [0, 1, 2];
        let history = TokenHistory::new(&tokens, 3);
        let base = SamplingParams { repetition_penalty: 2.0, ..SamplingParams::greedy() };
        for (repeat_last_n, expected) in [
            (0, vec![2.0, 2.0, 2.0, 2.0]),
            (1, vec![2.0, 2.0, 1.0, 2.0]),
            (2, vec![2.0, 1.0, 1.0, 2.0]),
            (-1, vec![1.0, 1.0, 1.0, 2.0]),
        ] {
            let params = SamplingParams { repeat_last_n, ..base.clone() };
            let mut logits = vec![2.0; 4];
            Sampler::new(&params).unwrap().sample(&mut logits, history).unwrap();
            assert_eq!(logits, expected, "repeat_last_n {repeat_last_n}");
        }
    }

    #[test]
    fn penalties_change_the_greedy_choice() {
        let tokens = [0];
        let params = SamplingParams { frequency_penalty: 1.0, ..SamplingParams::greedy() };
        let mut logits = vec![2.0, 1.5];
        let sampled = Sampler::new(&params)
            .unwrap()
            .sample(&mut logits, TokenHistory::generated_only(&tokens))
            .unwrap();
        assert_eq!(sampled.token, 1);
    }

    #[test]
    fn history_token_outside_vocabulary_is_an_error() {
        let tokens = [7];
        let params = SamplingParams { repetition_penalty: 1.1, ..SamplingParams::greedy() };
        let result = Sampler::new(&params)
            .unwrap()
            .sample(&mut [0.0, 1.0], TokenHistory::generated_only(&tokens));
        assert_eq!(result, Err(SamplingError::TokenOutOfVocabulary { token: 7, vocab_size: 2 }));
    }

    #[test]
    fn top_p_one_and_min_p_zero_are_noops() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.71).cos()).collect();
        let plain = draw_many(&seeded(99), &logits, 500);
        let explicit = SamplingParams { top_p: 1.0, min_p: 0.0, top_k: 0, ..seeded(99) };
        assert_eq!(plain, draw_many(&explicit, &logits, 500));
        // top_k >= vocabulary size is a no-op too.
        let large_k = SamplingParams { top_k: 50, ..seeded(99) };
        assert_eq!(plain, draw_many(&large_k, &logits, 500));
    }

    #[test]
    fn truncation_only_samples_allowed_tokens() {
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let top_p = SamplingParams { top_p: 0.7, ..seeded(1) };
        assert!(draw_many(&top_p, &logits, 500).iter().all(|&token| token <= 1));
        let min_p = SamplingParams { min_p: 0.5, ..seeded(1) };
        assert!(draw_many(&min_p, &logits, 500).iter().all(|&token| token <= 1));
        let combined = SamplingParams { top_k: 3, top_p: 0.95, min_p: 0.4, ..seeded(1) };
        let tokens = draw_many(&combined, &logits, 500);
        assert!(tokens.iter().all(|&token| token <= 1));
        assert!(tokens.contains(&0) && tokens.contains(&1));
    }

    #[test]
    fn large_vocabulary_top_k_samples_within_k() {
        let vocab_size = 262_144;
        let logits: Vec<f32> = (0..vocab_size as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32) * 1e-7)
            .collect();
        let mut sorted: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let allowed: Vec<u32> = sorted[..40].iter().map(|&(token, _)| token).collect();
        let params = SamplingParams { top_k: 40, top_p: 0.9, ..seeded(17) };
        for token in draw_many(&params, &logits, 50) {
            assert!(allowed.contains(&token));
        }
    }
}
