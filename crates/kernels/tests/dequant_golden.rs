//! Dequantization of every tensor of the three real test models, compared bit for bit (by
//! sha256 of the little-endian f32 output) with gguf-py's `gguf.quants.dequantize`, whose
//! digests `scripts/golden/dequant_digests.py` wrote to `tests/golden/dequant/<stem>.tsv`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use uma_gguf::{GgmlType, GgufFile};
use uma_test_models::TestModel;

/// Elements dequantized at a time: bounds memory (the largest tensors have 233M elements) and is
/// a whole number of blocks of every type.
const CHUNK_ELEMENTS: usize = 1 << 18;

struct Tensor<'a> {
    name: &'a str,
    ty: GgmlType,
    num_elements: usize,
    data: &'a [u8],
}

/// sha256 of the tensor's dequantized values, streamed chunk by chunk.
fn digest(tensor: &Tensor<'_>) -> Result<String, String> {
    let block_size = tensor.ty.block_size();
    let block_bytes = tensor.ty.type_size();
    let mut hasher = Sha256::new();
    let mut out = vec![0.0f32; CHUNK_ELEMENTS.min(tensor.num_elements)];
    let mut done = 0usize;
    while done < tensor.num_elements {
        let n = CHUNK_ELEMENTS.min(tensor.num_elements - done);
        let start = done / block_size * block_bytes;
        let end = (done + n) / block_size * block_bytes;
        let bytes = tensor.data.get(start..end).ok_or("tensor data shorter than its shape")?;
        uma_kernels::dequantize(tensor.ty, bytes, &mut out[..n]).map_err(|e| e.to_string())?;
        hasher.update(bytemuck::cast_slice::<f32, u8>(&out[..n]));
        done += n;
    }
    Ok(common::hex(&hasher.finalize()))
}

fn check_model(model: TestModel) {
    let golden_path = common::golden_dir().join("dequant").join(format!("{}.tsv", model.stem()));
    let mut golden: BTreeMap<String, (String, u64, String)> = BTreeMap::new();
    for row in common::tsv_rows(&golden_path) {
        assert_eq!(row.len(), 4, "{}: malformed row {row:?}", golden_path.display());
        let num_elements = row[2].parse().expect("num_elements is an integer");
        let previous =
            golden.insert(row[0].clone(), (row[1].clone(), num_elements, row[3].clone()));
        assert!(previous.is_none(), "duplicate tensor {} in {}", row[0], golden_path.display());
    }

    let file = GgufFile::open(uma_test_models::path(model)).expect("test model opens");
    let tensors: Vec<Tensor<'_>> = file
        .tensors()
        .map(|t| Tensor {
            name: t.name(),
            ty: t.ggml_type(),
            num_elements: usize::try_from(t.num_elements()).expect("fits in usize"),
            data: t.data(),
        })
        .collect();

    let ours: BTreeSet<&str> = tensors.iter().map(|t| t.name).collect();
    let theirs: BTreeSet<&str> = golden.keys().map(String::as_str).collect();
    assert_eq!(
        ours,
        theirs,
        "{}: tensor names differ from the golden file (only in model: {:?}; only in golden: {:?})",
        model.stem(),
        ours.difference(&theirs).collect::<Vec<_>>(),
        theirs.difference(&ours).collect::<Vec<_>>()
    );

    // Largest first so the two cores finish together; a shared cursor hands out the next tensor.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tensors[i].num_elements));
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let tensor = &tensors[i];
                    let (golden_type, golden_elements, golden_digest) = &golden[tensor.name];
                    let problem = if golden_type != tensor.ty.name() {
                        Some(format!("type {} vs golden {golden_type}", tensor.ty))
                    } else if *golden_elements != tensor.num_elements as u64 {
                        Some(format!(
                            "{} elements vs golden {golden_elements}",
                            tensor.num_elements
                        ))
                    } else {
                        match digest(tensor) {
                            Ok(d) if &d == golden_digest => None,
                            Ok(d) => {
                                Some(format!("{}: sha256 {d} vs golden {golden_digest}", tensor.ty))
                            }
                            Err(e) => Some(format!("{}: {e}", tensor.ty)),
                        }
                    };
                    if let Some(problem) = problem {
                        failures
                            .lock()
                            .expect("no panics while held")
                            .push(format!("{}: {problem}", tensor.name));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().expect("workers finished");
    failures.sort();
    assert!(
        failures.is_empty(),
        "{}: {} of {} tensors differ from gguf-py:\n{}",
        model.stem(),
        failures.len(),
        tensors.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_files_cover_every_test_model() {
    for model in TestModel::ALL {
        let path = common::golden_dir().join("dequant").join(format!("{}.tsv", model.stem()));
        assert!(path.is_file(), "missing golden file {}", path.display());
    }
}

#[test]
fn qwen_coder_05b_matches_gguf_py() {
    check_model(TestModel::QwenCoder05b);
}

#[test]
fn qwen_coder_15b_matches_gguf_py() {
    check_model(TestModel::QwenCoder15b);
}

#[test]
fn gemma3_270m_matches_gguf_py() {
    check_model(TestModel::Gemma3_270m);
}
