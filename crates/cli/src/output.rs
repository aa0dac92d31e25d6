//! Writing results to stdout.

use std::io::{ErrorKind, Write};

/// Prints `text` to stdout. A closed pipe (`uma show m.gguf | head`) is not an error: the reader
/// has what it wanted.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
