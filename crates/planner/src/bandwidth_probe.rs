//! The machine's memory read bandwidth, measured: what decode speed is compared against.
//!
//! Like the `read` kernel of STREAM (`s += a[i]` over an array far larger than the caches), in
//! safe Rust: a buffer of at least 1 GiB (and more than 4× the last-level cache, so no pass is
//! served from cache) is first touched by the threads that later read it, then every thread sums
//! the 64-bit words of its own contiguous share. The best of several passes counts: the others
//! were disturbed by something else on the machine.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{PlannerError, Result};

/// Smallest buffer the probe reads: far above any L3 on machines uma targets.
const MIN_BUFFER_BYTES: usize = 1 << 30;
/// The buffer is at least this many times the last-level cache.
const CACHE_MULTIPLE: usize = 8;
/// Timed passes over the buffer; the fastest is reported.
pub const DEFAULT_PASSES: usize = 8;
/// Independent accumulators per thread: enough that the adds vectorize and never wait on one
/// another, so the loop is bound by memory, not by add latency.
const LANES: usize = 16;

/// One probe's result.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct BandwidthProbe {
    /// Size of the buffer read in each pass.
    pub bytes: usize,
    /// Threads reading it together.
    pub threads: usize,
    /// Timed passes.
    pub passes: usize,
    /// Duration of the fastest pass.
    pub best_seconds: f64,
    /// `bytes / best_seconds`, in GB/s (1 GB = 10⁹ bytes).
    pub gb_per_s: f64,
}

/// Measures read bandwidth with `threads` threads over a buffer sized for this machine's caches.
pub fn probe_bandwidth(threads: usize) -> Result<BandwidthProbe> {
    measure_bandwidth(buffer_bytes(last_level_cache_bytes()), threads, DEFAULT_PASSES)
}

/// Probe buffer size: at least 1 GiB and [`CACHE_MULTIPLE`] times the last-level cache.
fn buffer_bytes(last_level_cache: Option<usize>) -> usize {
    last_level_cache
        .map_or(MIN_BUFFER_BYTES, |llc| MIN_BUFFER_BYTES.max(llc.saturating_mul(CACHE_MULTIPLE)))
}

/// Reads about `bytes` (rounded down to whole words) with `threads` threads, `passes` times.
pub fn measure_bandwidth(bytes: usize, threads: usize, passes: usize) -> Result<BandwidthProbe> {
    if threads == 0 || passes == 0 {
        return Err(PlannerError::BandwidthProbe {
            reason: "it needs at least one thread and one pass".into(),
        });
    }
    let num_words = bytes / size_of::<u64>();
    if num_words < threads * LANES {
        return Err(PlannerError::BandwidthProbe {
            reason: format!("{bytes} bytes are too few for {threads} threads"),
        });
    }
    // Each thread allocates and writes its own share: zeroed memory the OS has not mapped yet
    // would read as one shared zero page, and the thread that first touches a page decides where
    // it lives (near the core that reads it later).
    let share = num_words.div_ceil(threads).next_multiple_of(LANES);
    let shares: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..threads)
            .map(|index| {
                let first = index * share;
                let len = share.min(num_words.saturating_sub(first));
                scope.spawn(move || {
                    let mut words: Vec<u64> = Vec::new();
                    words.try_reserve_exact(len)?;
                    words.extend(first as u64..(first + len) as u64);
                    Ok::<_, std::collections::TryReserveError>(words)
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|writer| writer.join().expect("a probe thread only writes numbers"))
            .collect::<std::result::Result<_, _>>()
    })
    .map_err(|_| PlannerError::BandwidthProbeAllocation { bytes })?;
    let chunks: Vec<&[u64]> =
        shares.iter().map(Vec::as_slice).filter(|chunk| !chunk.is_empty()).collect();

    // The readers start each pass together and each times its own share; a pass lasts from the
    // first start to the last finish. (Timing from a coordinating thread would be wrong on a
    // machine with no spare core: it may wake late and see a pass shorter than it was.)
    let barrier = Barrier::new(chunks.len());
    let readers: Vec<(u64, Vec<(Instant, Instant)>)> = std::thread::scope(|scope| {
        let readers: Vec<_> = chunks
            .iter()
            .map(|&chunk| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut sum = 0u64;
                    let mut times = Vec::with_capacity(passes);
                    for _ in 0..passes {
                        barrier.wait();
                        let started = Instant::now();
                        sum = sum.wrapping_add(std::hint::black_box(sum_words(chunk)));
                        times.push((started, Instant::now()));
                    }
                    (sum, times)
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|reader| reader.join().expect("a probe thread only adds numbers"))
            .collect()
    });
    std::hint::black_box(readers.iter().fold(0u64, |total, (sum, _)| total.wrapping_add(*sum)));
    let best = (0..passes)
        .map(|pass| {
            let first_start = readers.iter().map(|(_, t)| t[pass].0).min();
            let last_end = readers.iter().map(|(_, t)| t[pass].1).max();
            match (first_start, last_end) {
                (Some(start), Some(end)) => end.duration_since(start),
                _ => Duration::MAX,
            }
        })
        .min()
        .unwrap_or(Duration::MAX);
    let bytes = num_words * size_of::<u64>();
    let best_seconds = best.as_secs_f64().max(1e-9);
    Ok(BandwidthProbe {
        bytes,
        threads: chunks.len(),
        passes,
        best_seconds,
        gb_per_s: bytes as f64 / best_seconds / 1e9,
    })
}

/// Wrapping sum of `words`, in [`LANES`] independent accumulators.
fn sum_words(words: &[u64]) -> u64 {
    let mut lanes = [0u64; LANES];
    let mut blocks = words.chunks_exact(LANES);
    for block in &mut blocks {
        for (lane, &word) in lanes.iter_mut().zip(block) {
            *lane = lane.wrapping_add(word);
        }
    }
    let rest = blocks.remainder().iter().fold(0u64, |sum, &word| sum.wrapping_add(word));
    lanes.iter().fold(rest, |sum, &lane| sum.wrapping_add(lane))
}

/// Size of the largest (last-level) CPU cache, where the OS says (Linux sysfs); `None` elsewhere.
fn last_level_cache_bytes() -> Option<usize> {
    let entries = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    entries
        .filter_map(|entry| {
            let size = std::fs::read_to_string(entry.ok()?.path().join("size")).ok()?;
            parse_cache_size(&size)
        })
        .max()
}

/// `"32768K"` → 33554432 (sysfs writes K, M or plain bytes).
fn parse_cache_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, multiplier) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 1 << 10),
        b'M' => (&text[..text.len() - 1], 1 << 20),
        b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_word_once() {
        let words: Vec<u64> = (0..1000).collect();
        assert_eq!(sum_words(&words), 999 * 1000 / 2);
        assert_eq!(sum_words(&words[..7]), 21);
        assert_eq!(sum_words(&[u64::MAX, 2]), 1);
    }

    #[test]
    fn a_small_probe_reports_its_shape() {
        let probe = measure_bandwidth(8 << 20, 2, 3).expect("probe");
        assert_eq!((probe.bytes, probe.threads, probe.passes), (8 << 20, 2, 3));
        assert!(probe.gb_per_s.is_finite() && probe.gb_per_s > 0.0, "{probe:?}");
        assert!(measure_bandwidth(64, 4, 1).is_err());
        assert!(measure_bandwidth(1 << 20, 0, 1).is_err());
    }

    #[test]
    fn buffer_is_at_least_a_gibibyte_and_well_above_the_cache() {
        assert_eq!(buffer_bytes(None), 1 << 30);
        assert_eq!(buffer_bytes(Some(32 << 20)), 1 << 30);
        assert_eq!(buffer_bytes(Some(256 << 20)), 2 << 30);
        assert_eq!(parse_cache_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("big"), None);
    }
}
