//! The GPU's memory read bandwidth, measured: what `uma bench --device gpu` compares decode
//! with (weight bytes read per second over this).

use std::sync::Arc;
use std::time::Instant;

use crate::backend::GpuBackend;
use crate::context::GpuContext;
use crate::error::Result;
use crate::recorder::Recorder;
use crate::shader::COMMON;

/// Most bytes the probe reads per pass.
const PROBE_BYTES: u64 = 1 << 30;
/// Timed passes; the best counts.
const PROBE_PASSES: usize = 5;
/// Workgroups of the probe (each strides over the buffer).
const PROBE_WORKGROUPS: u32 = 4096;

const BANDWIDTH: &str = include_str!("shaders/bandwidth.wgsl");

/// One measurement of the GPU's read bandwidth.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BandwidthProbe {
    pub gb_per_s: f64,
    /// Bytes read per pass.
    pub bytes: u64,
    pub passes: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::NoUninit)]
struct Params {
    len: u32,
}

/// Reads a device buffer (up to 1 GiB, within the device's limits) with a kernel, several
/// times, and reports the best pass's bytes per second, submission and wait included.
pub fn probe_bandwidth(context: &std::sync::Arc<GpuContext>) -> Result<BandwidthProbe> {
    let info = context.info();
    let bytes = PROBE_BYTES.min(info.max_binding_bytes).min(info.max_buffer_bytes) / 16 * 16;
    let backend = GpuBackend::new(context.clone());
    let data = backend.create_buffer("bandwidth probe", bytes)?;
    let sums = backend.create_buffer("bandwidth sums", u64::from(PROBE_WORKGROUPS) * 4)?;
    let kernel = backend.kernels().get("bandwidth", &[COMMON, BANDWIDTH], &[])?;
    let params = Params { len: (bytes / 16) as u32 };
    let mut best = f64::MAX;
    // One untimed pass first: the first touch of fresh memory costs more than a read.
    for pass in 0..=PROBE_PASSES {
        let mut recorder = Recorder::new(
            context.clone(),
            Arc::default(),
            Arc::default(),
            Recorder::new_arena(context),
        );
        let buffers = [
            crate::backend::whole(&data, (bytes / 4) as usize),
            crate::backend::whole(&sums, PROBE_WORKGROUPS as usize),
        ];
        recorder.dispatch(
            &kernel,
            bytemuck::bytes_of(&params),
            &buffers,
            [PROBE_WORKGROUPS, 1, 1],
        )?;
        let start = Instant::now();
        recorder.submit()?;
        context.wait()?;
        if pass > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(BandwidthProbe { gb_per_s: bytes as f64 / best / 1e9, bytes, passes: PROBE_PASSES })
}
