//! Feeds arbitrary bytes to the GGUF parser. Any panic, out-of-bounds read (AddressSanitizer) or
//! allocation beyond libFuzzer's `-rss_limit_mb` is a bug. For inputs that parse, every accessor
//! a loader uses is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uma_gguf::{GgufFile, ModelParams, TokenizerParams};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else { return };
    let _ = ModelParams::from_metadata(file.metadata());
    let _ = TokenizerParams::from_metadata(file.metadata());
    for (_, value) in file.metadata().iter() {
        let _ = value.display_short();
    }
    for tensor in file.tensors() {
        let data = tensor.data();
        assert_eq!(data.len() as u64, tensor.info().size_in_bytes);
        // Touch the first and last byte so ASan checks the view really lies in the buffer.
        let _ = (data.first(), data.last());
        assert!(file.tensor(tensor.name()).is_ok());
    }
});
