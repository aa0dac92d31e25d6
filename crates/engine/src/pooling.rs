//! Embeddings: one vector per input, pooled from the model's final hidden states.

/// How token states become one embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean of every token's state (sentence-embedding models, and decoder models used as
    /// encoders).
    Mean,
    /// The last token's state (Qwen3-Embedding and other decoder embedding models).
    Last,
}

impl Pooling {
    /// The pooling a GGUF file declares (`<arch>.pooling_type`, llama.cpp's numbering), if it is
    /// one uma implements.
    pub fn from_gguf(pooling_type: u64) -> Option<Pooling> {
        match pooling_type {
            1 => Some(Pooling::Mean),
            3 => Some(Pooling::Last),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Last => "last",
        }
    }
}

/// Accumulates token states into one embedding, normalized to unit length at the end (as
/// OpenAI's and llama.cpp's embeddings are).
#[derive(Debug)]
pub(crate) struct Pooler {
    pooling: Pooling,
    sum: Vec<f64>,
    count: usize,
}

impl Pooler {
    pub(crate) fn new(pooling: Pooling, hidden_size: usize) -> Pooler {
        Pooler { pooling, sum: vec![0.0; hidden_size], count: 0 }
    }

    /// Adds one token's state (in order: for last-token pooling the latest wins).
    pub(crate) fn add(&mut self, state: &[f32]) {
        match self.pooling {
            Pooling::Mean => {
                self.sum.iter_mut().zip(state).for_each(|(s, &v)| *s += f64::from(v));
            }
            Pooling::Last => {
                self.sum.iter_mut().zip(state).for_each(|(s, &v)| *s = f64::from(v));
            }
        }
        self.count += 1;
    }

    pub(crate) fn finish(self) -> Vec<f32> {
        let scale = match self.pooling {
            Pooling::Mean => 1.0 / self.count.max(1) as f64,
            Pooling::Last => 1.0,
        };
        let pooled: Vec<f64> = self.sum.iter().map(|s| s * scale).collect();
        let norm = pooled.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inverse = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        pooled.iter().map(|v| (v * inverse) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_last_pooling_are_normalized() {
        let mut mean = Pooler::new(Pooling::Mean, 2);
        mean.add(&[3.0, 0.0]);
        mean.add(&[1.0, 4.0]);
        // Mean (2, 2) → (1/√2, 1/√2).
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(mean.finish(), [half, half]);
        let mut last = Pooler::new(Pooling::Last, 2);
        last.add(&[1.0, 1.0]);
        last.add(&[0.0, -2.0]);
        assert_eq!(last.finish(), [0.0, -1.0]);
        assert_eq!(Pooler::new(Pooling::Mean, 2).finish(), [0.0, 0.0], "nothing to pool");
        assert_eq!(Pooling::from_gguf(1), Some(Pooling::Mean));
        assert_eq!(Pooling::from_gguf(3), Some(Pooling::Last));
        assert_eq!(Pooling::from_gguf(2), None, "CLS pooling is not implemented");
    }
}
