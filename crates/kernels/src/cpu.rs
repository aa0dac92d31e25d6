//! What this CPU can do, detected once per process. Every kernel family (the packed matrix
//! products, the attention loops, the row kernels) chooses its path from this one answer, so
//! they never disagree about the machine and the probing runs once.

use std::sync::OnceLock;

/// The instruction-set extensions uma has kernels for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// x86-64 AVX2 with FMA and F16C (every AVX2 CPU has all three).
    pub avx2: bool,
    /// x86-64 AVX-512 F, BW and VL, on top of [`CpuFeatures::avx2`].
    pub avx512: bool,
    /// x86-64 AVX-512 VNNI (`vpdpbusd`), on top of [`CpuFeatures::avx512`].
    pub avx512_vnni: bool,
    /// aarch64 NEON with the dot-product instructions (`sdot`; Apple M1 and later).
    pub neon_dotprod: bool,
}

impl CpuFeatures {
    /// This CPU's features, probed on first use.
    pub fn detected() -> CpuFeatures {
        static DETECTED: OnceLock<CpuFeatures> = OnceLock::new();
        *DETECTED.get_or_init(CpuFeatures::probe)
    }

    #[cfg(target_arch = "x86_64")]
    fn probe() -> CpuFeatures {
        use std::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
        let avx512_vnni = avx512 && has!("avx512vnni");
        CpuFeatures { avx2, avx512, avx512_vnni, neon_dotprod: false }
    }

    #[cfg(target_arch = "aarch64")]
    fn probe() -> CpuFeatures {
        let neon_dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        CpuFeatures { neon_dotprod, ..CpuFeatures::default() }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn probe() -> CpuFeatures {
        CpuFeatures::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_implies_the_one_below() {
        let cpu = CpuFeatures::detected();
        assert!(!cpu.avx512 || cpu.avx2);
        assert!(!cpu.avx512_vnni || cpu.avx512);
        assert_eq!(cpu, CpuFeatures::probe(), "detection is stable");
    }
}
