//! Sampling a whole batch: one logits row and one sampler per sequence.

use crate::error::{Result, SamplingError};
use crate::sampler::{SampledToken, Sampler};
use crate::token_history::TokenHistory;

/// Samples every row of `logits` (`[num_seqs, vocab_size]`, row-major) with its own sampler and
/// history; `num_seqs = samplers.len() = histories.len()`. Rows are edited in place as
/// [`Sampler::sample`] describes. Fails on the first row that fails.
pub fn sample_batch(
    samplers: &mut [Sampler],
    logits: &mut [f32],
    histories: &[TokenHistory<'_>],
) -> Result<Vec<SampledToken>> {
    let num_seqs = samplers.len();
    if num_seqs == 0 && histories.is_empty() && logits.is_empty() {
        return Ok(Vec::new());
    }
    if num_seqs == 0
        || histories.len() != num_seqs
        || logits.is_empty()
        || !logits.len().is_multiple_of(num_seqs)
    {
        return Err(SamplingError::BatchShape {
            num_samplers: num_seqs,
            num_histories: histories.len(),
            num_logits: logits.len(),
        });
    }
    let vocab_size = logits.len() / num_seqs;
    samplers
        .iter_mut()
        .zip(logits.chunks_exact_mut(vocab_size))
        .zip(histories)
        .map(|((sampler, row), &history)| sampler.sample(row, history))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SamplingParams;

    #[test]
    fn each_row_uses_its_own_sampler() {
        let greedy = Sampler::new(&SamplingParams::greedy()).unwrap();
        let penalized =
            Sampler::new(&SamplingParams { repetition_penalty: 4.0, ..SamplingParams::greedy() })
                .unwrap();
        let mut samplers = vec![greedy, penalized];
        let mut logits = vec![
            1.0, 2.0, 0.0, // row 0
            1.0, 2.0, 0.0, // row 1: token 1 was generated and is penalized to 0.5
        ];
        let tokens = [1];
        let histories = [TokenHistory::default(), TokenHistory::generated_only(&tokens)];
        let sampled = sample_batch(&mut samplers, &mut logits, &histories).unwrap();
        let chosen: Vec<_> = sampled.iter().map(|s| s.token).collect();
        assert_eq!(chosen, vec![1, 0]);
        assert_eq!(logits[4], 0.5);
    }

    #[test]
    fn matches_sampling_rows_one_by_one() {
        let params = SamplingParams { seed: Some(5), ..SamplingParams::default() };
        let row: Vec<f32> = (0..100).map(|i| (i as f32 * 0.3).sin()).collect();
        let mut batch_samplers =
            [Sampler::with_stream(&params, 0).unwrap(), Sampler::with_stream(&params, 1).unwrap()];
        let mut single_samplers =
            [Sampler::with_stream(&params, 0).unwrap(), Sampler::with_stream(&params, 1).unwrap()];
        let histories = [TokenHistory::default(); 2];
        for _ in 0..20 {
            let mut logits = [row.clone(), row.clone()].concat();
            let batch = sample_batch(&mut batch_samplers, &mut logits, &histories).unwrap();
            for (sampler, sampled) in single_samplers.iter_mut().zip(&batch) {
                let single = sampler.sample(&mut row.clone(), TokenHistory::default()).unwrap();
                assert_eq!(&single, sampled);
            }
        }
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let mut samplers = vec![Sampler::new(&SamplingParams::greedy()).unwrap()];
        let mut logits = vec![0.0; 4];
        let error = sample_batch(&mut samplers, &mut logits, &[]).unwrap_err();
        assert_eq!(
            error,
            SamplingError::BatchShape { num_samplers: 1, num_histories: 0, num_logits: 4 }
        );
        assert!(sample_batch(&mut [], &mut [], &[]).unwrap().is_empty());
        assert!(sample_batch(&mut [], &mut logits, &[]).is_err());
    }
}
