//! Reading valid files: writer round trips (v2 and v3), zero-copy views, typed parameters, and
//! the three real models.

mod common;

use common::sample_writer;
use uma_gguf::{
    GgmlType, GgufFile, GgufWriter, MetadataArray, MetadataValue, ModelParams, TokenizerParams,
};
use uma_test_models::TestModel;

#[test]
fn writer_output_round_trips_through_the_reader() {
    for version in [2, 3] {
        let writer = sample_writer().with_version(version);
        let bytes = writer.to_bytes();
        let file = GgufFile::from_bytes(bytes.clone()).unwrap();
        assert_eq!(file.version(), version);
        let m = file.metadata();
        assert_eq!(m.len(), 26);
        assert_eq!(m.get("t.u8"), Some(&MetadataValue::U8(200)));
        assert_eq!(m.get("t.i64"), Some(&MetadataValue::I64(i64::MIN)));
        assert_eq!(m.get("t.u64"), Some(&MetadataValue::U64(u64::MAX)));
        assert_eq!(m.get_str("t.unicode").unwrap(), Some("héllo 世界 🦀"));
        assert_eq!(m.get_str("t.empty_string").unwrap(), Some(""));
        assert_eq!(m.get_bool("t.bool").unwrap(), Some(true));
        assert_eq!(m.get_f64("t.f64").unwrap(), Some(-0.5));
        assert_eq!(m.get_str_array("t.strings").unwrap().unwrap(), ["a", "", "ç"]);
        assert_eq!(
            m.get_array("t.nested").unwrap().unwrap(),
            &MetadataArray::Array(vec![
                MetadataArray::I32(vec![1, -2]),
                MetadataArray::String(vec!["x".into()]),
                MetadataArray::Array(vec![MetadataArray::U16(vec![7])]),
            ])
        );
        assert_eq!(m.get_array("t.empty").unwrap().unwrap().len(), 0);

        let names: Vec<_> = file.tensors().map(|t| t.name()).collect();
        assert_eq!(names, ["a.f32", "b.q8_0", "c.q4_k", "d.f16.4d"]);
        let a = file.tensor("a.f32").unwrap();
        assert_eq!(a.shape(), [64, 3]);
        assert_eq!(a.ggml_type(), GgmlType::F32);
        assert_eq!(a.num_elements(), 192);
        assert_eq!(&a.data()[4..8], 1f32.to_le_bytes());
        assert_eq!(a.file_offset() % 32, 0, "tensor data is aligned");
        let q = file.tensor("b.q8_0").unwrap();
        assert_eq!(q.data(), vec![7u8; 136].as_slice());
        assert_eq!(file.tensor("d.f16.4d").unwrap().info().num_rows(), 3);
        assert!(file.tensor("nope").is_err());

        // Zero-copy: the view points into the file's bytes at the recorded offset.
        let start = q.file_offset() as usize;
        assert_eq!(&bytes[start..start + q.data().len()], q.data());

        // Writing what was read reproduces the file byte for byte.
        let mut rewritten = GgufWriter::new().with_version(version);
        for (key, value) in m.iter() {
            rewritten.add_metadata(key, value.clone()).unwrap();
        }
        for t in file.tensors() {
            rewritten.add_tensor(t.name(), t.ggml_type(), t.shape(), t.data().to_vec()).unwrap();
        }
        assert_eq!(rewritten.to_bytes(), bytes);
    }
}

#[test]
fn custom_alignment_is_honoured() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", MetadataValue::U32(64)).unwrap();
    w.add_tensor("x", GgmlType::F32, &[3], vec![0; 12]).unwrap();
    w.add_tensor("y", GgmlType::F32, &[1], vec![0; 4]).unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(file.header().alignment, 64);
    for t in file.tensors() {
        assert_eq!(t.file_offset() % 64, 0);
    }
}

#[test]
fn model_params_from_sample() {
    let file = GgufFile::from_bytes(sample_writer().to_bytes()).unwrap();
    let p = ModelParams::from_metadata(file.metadata()).unwrap();
    assert_eq!(p.architecture, "llama");
    assert_eq!(p.num_hidden_layers, 2);
    assert_eq!(p.num_key_value_heads, 2);
    assert_eq!(p.head_dim, 16, "derived as hidden_size / heads without key_length");
    assert_eq!(TokenizerParams::from_metadata(file.metadata()).unwrap(), None);
}

#[test]
fn writer_refuses_inconsistent_tensors() {
    let mut w = GgufWriter::new();
    assert!(w.add_tensor("x", GgmlType::Q4_0, &[16], vec![0; 9]).is_err(), "partial block");
    assert!(w.add_tensor("x", GgmlType::F32, &[2], vec![0; 7]).is_err(), "wrong byte count");
    assert!(w.add_tensor("x", GgmlType::F32, &[1, 1, 1, 1, 1], vec![0; 4]).is_err(), "5 dims");
    w.add_tensor("x", GgmlType::F32, &[1], vec![0; 4]).unwrap();
    assert!(w.add_tensor("x", GgmlType::F32, &[1], vec![0; 4]).is_err(), "duplicate");
    w.add_metadata("general.alignment", MetadataValue::U32(3)).unwrap();
    let mut sink = Vec::new();
    assert!(w.write(&mut sink).is_err(), "alignment 3 is not a power of two");
}

#[test]
fn writes_and_opens_files_on_disk() {
    let path = std::env::temp_dir().join(format!("uma-gguf-test-{}.gguf", std::process::id()));
    sample_writer().write_file(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.path(), Some(path.as_path()));
    assert_eq!(file.tensors().len(), 4);
    std::fs::remove_file(&path).unwrap();
    let err = GgufFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("cannot read") && err.contains(".gguf"), "{err}");
}

#[test]
fn real_models_parse_with_expected_structure() {
    for model in TestModel::ALL {
        let file = GgufFile::open(uma_test_models::path(model)).unwrap();
        let params = ModelParams::from_metadata(file.metadata()).unwrap();
        let tokenizer = TokenizerParams::from_metadata(file.metadata()).unwrap().unwrap();
        let (arch, layers, hidden, heads, kv_heads, head_dim, vocab) = match model {
            TestModel::QwenCoder05b => ("qwen2", 24, 896, 14, 2, 64, 151_936),
            TestModel::QwenCoder15b => ("qwen2", 28, 1536, 12, 2, 128, 151_936),
            TestModel::Gemma3_270m => ("gemma3", 18, 640, 4, 1, 256, 262_144),
        };
        assert_eq!(params.architecture, arch);
        assert_eq!(params.num_hidden_layers, layers);
        assert_eq!(params.hidden_size, hidden);
        assert_eq!(params.num_attention_heads, heads);
        assert_eq!(params.num_key_value_heads, kv_heads);
        assert_eq!(params.head_dim, head_dim);
        assert_eq!(tokenizer.vocab_size, vocab);
        // Every tensor's bytes lie inside the file, and the data section is fully accounted for.
        let data: u64 = file.tensors().map(|t| t.data().len() as u64).sum();
        assert!(data <= file.file_size() - file.header().data_offset);
        assert!(file.has_tensor("token_embd.weight"));
    }
}

#[test]
fn released_tensor_pages_read_back_unchanged() {
    let path = uma_test_models::path(TestModel::Gemma3_270m);
    let file = GgufFile::open(&path).unwrap();
    let name = "token_embd.weight"; // 178 MB: many whole pages
    let before = file.tensor(name).unwrap().data().to_vec();
    file.release_tensor_pages(name).unwrap();
    assert!(file.tensor(name).unwrap().data() == before.as_slice());
    assert!(file.release_tensor_pages("no.such.tensor").is_err());
    // Files held in memory have no pages to release.
    let in_memory = GgufFile::from_bytes(sample_writer().to_bytes()).unwrap();
    let first = in_memory.tensor_infos()[0].name.clone();
    in_memory.release_tensor_pages(&first).unwrap();
}
