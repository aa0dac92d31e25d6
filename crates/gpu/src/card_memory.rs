//! A discrete card's own memory, which wgpu does not report: read from the driver's tools where
//! the platform has them (Linux: the kernel's sysfs for AMD and Intel cards, `nvidia-smi` for
//! NVIDIA's). Matched to the adapter by PCI vendor and device id; `None` where unknown, and then
//! only the allocations themselves say when the card is full (a clear error at load).

use std::path::Path;

/// PCI vendor id of NVIDIA.
const NVIDIA: u32 = 0x10de;

/// Bytes of memory of the card with PCI ids `vendor` and `device`, when the platform says.
pub(crate) fn detect(vendor: u32, device: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    if vendor == NVIDIA {
        let output = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=pci.device_id,memory.total", "--format=csv,noheader,nounits"])
            .output()
            .ok()?;
        return nvidia_smi_memory(&String::from_utf8_lossy(&output.stdout), device);
    }
    let cards = std::fs::read_dir("/sys/class/drm").ok()?;
    cards.flatten().find_map(|card| sysfs_memory(&card.path().join("device"), vendor, device))
}

/// The memory of the card `device` in `nvidia-smi`'s CSV (`0x233510DE, 143771`: the PCI device
/// id over the vendor's, then MiB).
fn nvidia_smi_memory(csv: &str, device: u32) -> Option<u64> {
    let wanted = (device << 16) | NVIDIA;
    csv.lines().find_map(|line| {
        let (id, mib) = line.split_once(',')?;
        let id = u32::from_str_radix(id.trim().trim_start_matches("0x"), 16).ok()?;
        let mib: u64 = mib.trim().parse().ok()?;
        (id == wanted).then_some(mib << 20)
    })
}

/// `mem_info_vram_total` of the sysfs PCI device `dir` when its ids are `vendor` and `device`.
fn sysfs_memory(dir: &Path, vendor: u32, device: u32) -> Option<u64> {
    let id = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
    };
    if id("vendor")? != vendor || id("device")? != device {
        return None;
    }
    std::fs::read_to_string(dir.join("mem_info_vram_total")).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_are_matched_by_device_id() {
        let csv = "0x233510DE, 143771\n0x26B110DE, 49140\n";
        assert_eq!(nvidia_smi_memory(csv, 0x2335), Some(143_771 << 20));
        assert_eq!(nvidia_smi_memory(csv, 0x26b1), Some(49_140 << 20));
        assert_eq!(nvidia_smi_memory(csv, 0x1234), None);
        assert_eq!(nvidia_smi_memory("No devices were found\n", 0x2335), None);
        assert_eq!(nvidia_smi_memory("0x233510DE, [N/A]\n", 0x2335), None);
    }

    #[test]
    fn sysfs_cards_are_matched_by_vendor_and_device() {
        let dir = std::env::temp_dir().join(format!("uma-card-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vendor"), "0x1002\n").unwrap();
        std::fs::write(dir.join("device"), "0x73bf\n").unwrap();
        std::fs::write(dir.join("mem_info_vram_total"), "17163091968\n").unwrap();
        assert_eq!(sysfs_memory(&dir, 0x1002, 0x73bf), Some(17_163_091_968));
        assert_eq!(sysfs_memory(&dir, 0x1002, 0x744c), None);
        std::fs::remove_file(dir.join("mem_info_vram_total")).unwrap();
        assert_eq!(sysfs_memory(&dir, 0x1002, 0x73bf), None, "an integrated GPU has none");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
