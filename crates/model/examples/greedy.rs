//! Greedy generation from a prompt given as vocabulary pieces, for eyeballing a model and timing
//! decode: `cargo run --release -p uma-model --example greedy -- MODEL.gguf N piece piece ...`
//! (pieces are looked up verbatim in the GGUF vocabulary, e.g. `def` `Ġfib`).
use std::time::Instant;

use uma_model::{Batch, BlockId, LogitsRequest, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = Model::open(&args[0])?;
    let num_new: usize = args[1].parse()?;
    let vocab = model
        .file()
        .metadata()
        .get_str_array(uma_gguf::keys::TOKENIZER_TOKENS)?
        .ok_or("no vocabulary")?
        .to_vec();
    let mut prompt = Vec::new();
    for piece in &args[2..] {
        if let Ok(id) = piece.parse::<u32>() {
            prompt.push(id);
            continue;
        }
        let id = vocab.iter().position(|t| t == piece).ok_or(format!("{piece:?} not in vocab"))?;
        prompt.push(id as u32);
    }
    println!("prompt ids {prompt:?}");
    let mut kv = model.new_kv_cache(64)?;
    let table: Vec<BlockId> = (0..64).map(BlockId).collect();
    let start = Instant::now();
    let logits = model.forward(&Batch::single(&prompt, 0, &table, LogitsRequest::Last), &mut kv)?;
    let prefill = start.elapsed();
    let mut next = argmax(logits.row(0));
    let mut out = vec![next];
    let start = Instant::now();
    for i in 0..num_new.saturating_sub(1) {
        let pos = prompt.len() + i;
        let logits =
            model.forward(&Batch::single(&[next], pos, &table, LogitsRequest::Last), &mut kv)?;
        next = argmax(logits.row(0));
        out.push(next);
    }
    let decode = start.elapsed();
    println!("ids {out:?}");
    let text: String = out
        .iter()
        .map(|&t| vocab[t as usize].replace('Ġ', " ").replace('Ċ', "\n").replace('▁', " "))
        .collect();
    println!("text: {text}");
    println!(
        "prefill {} tokens in {:.3}s ({:.1} tok/s); decode {} tokens in {:.3}s ({:.2} tok/s)",
        prompt.len(),
        prefill.as_secs_f64(),
        prompt.len() as f64 / prefill.as_secs_f64(),
        num_new - 1,
        decode.as_secs_f64(),
        (num_new - 1) as f64 / decode.as_secs_f64()
    );
    Ok(())
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}
