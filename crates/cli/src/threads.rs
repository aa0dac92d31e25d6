//! The `--threads` option: the size of the kernels' global thread pool.

use anyhow::{bail, Result};
use uma_kernels::ThreadPool;

/// Sizes the worker pool (`None`: one thread per physical core) and returns the count in use.
/// Must run before the first model computation.
pub(crate) fn set_threads(threads: Option<usize>) -> Result<usize> {
    match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => {
            if let Err(current) = ThreadPool::set_global_threads(n) {
                bail!("the worker pool already runs {current} threads; cannot resize it to {n}");
            }
            Ok(n)
        }
        None => Ok(ThreadPool::global().num_threads()),
    }
}
