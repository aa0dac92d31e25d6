//! Where a GPU forward pass spends its time, counted by every pass of a backend: the CPU
//! recording dispatches and submitting them, and the CPU waiting for the device's results. The
//! split tells a slow step's cause: recording and submitting are per-dispatch overhead (fewer,
//! larger kernels help), waiting is the device's work (faster kernels help).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters summed over all passes (cheap: a few relaxed atomic adds per dispatch).
#[derive(Debug, Default)]
pub struct GpuStats {
    passes: AtomicU64,
    dispatches: AtomicU64,
    submissions: AtomicU64,
    recording_ns: AtomicU64,
    submitting_ns: AtomicU64,
    waiting_ns: AtomicU64,
    /// Device time per kernel, from timestamps around each dispatch (UMA_GPU_PROFILE only).
    kernels: Mutex<BTreeMap<String, KernelTime>>,
}

/// The device time of one kernel's dispatches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelTime {
    pub dispatches: u64,
    pub device: Duration,
}

/// The counters at one moment; subtract two with [`GpuStatsSnapshot::since`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuStatsSnapshot {
    /// Forward passes begun.
    pub passes: u64,
    /// Kernel dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted.
    pub submissions: u64,
    /// CPU time recording dispatches (binding, encoding).
    pub recording: Duration,
    /// CPU time finishing and submitting command buffers.
    pub submitting: Duration,
    /// Time waiting for the device to finish and the results to be read.
    pub waiting: Duration,
    /// Device time by kernel name (empty unless profiling: `UMA_GPU_PROFILE=1`).
    pub kernels: BTreeMap<String, KernelTime>,
}

/// What a timed section adds to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Section {
    Recording,
    Submitting,
    Waiting,
}

impl GpuStats {
    pub fn snapshot(&self) -> GpuStatsSnapshot {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let time = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        GpuStatsSnapshot {
            passes: count(&self.passes),
            dispatches: count(&self.dispatches),
            submissions: count(&self.submissions),
            recording: time(&self.recording_ns),
            submitting: time(&self.submitting_ns),
            waiting: time(&self.waiting_ns),
            kernels: self.kernels.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Adds one dispatch of kernel `name` that took `device` on the device.
    pub(crate) fn add_kernel_time(&self, name: &str, device: Duration) {
        let mut kernels = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
        let time = kernels.entry(name.to_owned()).or_default();
        time.dispatches += 1;
        time.device += device;
    }

    pub(crate) fn count_pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dispatch(&self) {
        self.dispatches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_submission(&self) {
        self.submissions.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the time since `started` to `section`.
    pub(crate) fn add(&self, section: Section, started: Instant) {
        let counter = match section {
            Section::Recording => &self.recording_ns,
            Section::Submitting => &self.submitting_ns,
            Section::Waiting => &self.waiting_ns,
        };
        counter.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl GpuStatsSnapshot {
    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &GpuStatsSnapshot) -> GpuStatsSnapshot {
        GpuStatsSnapshot {
            passes: self.passes - earlier.passes,
            dispatches: self.dispatches - earlier.dispatches,
            submissions: self.submissions - earlier.submissions,
            recording: self.recording.saturating_sub(earlier.recording),
            submitting: self.submitting.saturating_sub(earlier.submitting),
            waiting: self.waiting.saturating_sub(earlier.waiting),
            kernels: self
                .kernels
                .iter()
                .map(|(name, now)| {
                    let before = earlier.kernels.get(name).copied().unwrap_or_default();
                    let time = KernelTime {
                        dispatches: now.dispatches - before.dispatches,
                        device: now.device.saturating_sub(before.device),
                    };
                    (name.clone(), time)
                })
                .filter(|(_, time)| time.dispatches > 0)
                .collect(),
        }
    }
}
