//! Per-region overhead of [`ThreadPool::run`] against rayon.
//!
//! `cargo run --release -p uma-kernels --example thread_pool_overhead [num_threads]`
//!
//! One region = `num_threads` tasks, either empty or each busy for [`TASK_TIME`] (then a
//! perfectly parallel region takes `TASK_TIME`, and the rest is overhead). "Spinning": regions
//! back to back, the workers never park. "Parked": a pause longer than the pool's spin time
//! before each region, so every region starts with parked threads. rayon is measured two ways:
//! `install` + `par_iter` per region from an outside thread (what a caller outside rayon pays),
//! and `par_iter` inside one `install` (rayon's best case: the caller is a rayon worker).
//!
//! With empty tasks the uma caller usually claims every task before a worker arrives, so the
//! empty rows measure the fixed cost of a region; the busy rows measure the dispatch to workers.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use uma_kernels::thread_pool::SPIN_TIME;
use uma_kernels::{physical_cores, ThreadPool};

const SPINNING_ITERATIONS: u32 = 100_000;
const PARKED_ITERATIONS: u32 = 2_000;
const TASK_TIME: Duration = Duration::from_micros(5);

/// Mean nanoseconds per call of `region`, `iterations` calls back to back.
fn spinning(iterations: u32, mut region: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        region();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        region();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

/// Mean nanoseconds per call of `region` when each call follows a pause of `pause`.
fn parked(iterations: u32, pause: Duration, mut region: impl FnMut()) -> f64 {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        thread::sleep(pause);
        let start = Instant::now();
        region();
        total += start.elapsed();
    }
    total.as_nanos() as f64 / f64::from(iterations)
}

fn busy(i: usize) {
    let start = Instant::now();
    while start.elapsed() < TASK_TIME {
        std::hint::spin_loop();
    }
    black_box(i);
}

fn empty(i: usize) {
    black_box(i);
}

fn main() {
    let num_threads = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("the argument is a thread count"))
        .unwrap_or_else(physical_cores);
    let pause = (SPIN_TIME * 20).max(Duration::from_millis(1));
    println!(
        "{num_threads} threads (physical cores: {}), {num_threads} tasks per region",
        physical_cores()
    );
    println!("spinning: {SPINNING_ITERATIONS} regions back to back");
    println!("parked: {PARKED_ITERATIONS} regions, each after a {pause:?} pause");

    let pool = ThreadPool::new(num_threads);
    let rayon_pool =
        rayon::ThreadPoolBuilder::new().num_threads(num_threads).build().expect("a rayon pool");
    let workloads = [("empty tasks", SPINNING_ITERATIONS), ("tasks of 5 µs", 20_000)];
    for (name, iterations) in workloads {
        let task = if name == "empty tasks" { empty } else { busy };
        let uma_region = || pool.run(num_threads, &task);
        let uma_spinning = spinning(iterations, uma_region);
        let uma_parked = parked(PARKED_ITERATIONS, pause, uma_region);
        let rayon_region =
            || rayon_pool.install(|| (0..num_threads).into_par_iter().for_each(task));
        let rayon_spinning = spinning(iterations, rayon_region);
        let rayon_parked = parked(PARKED_ITERATIONS, pause, rayon_region);
        let rayon_inside = rayon_pool
            .install(|| spinning(iterations, || (0..num_threads).into_par_iter().for_each(task)));

        println!();
        println!("{:<42} {:>12} {:>12}", format!("ns per region, {name}"), "spinning", "parked");
        println!("{:<42} {uma_spinning:>12.0} {uma_parked:>12.0}", "uma ThreadPool::run");
        println!("{:<42} {rayon_spinning:>12.0} {rayon_parked:>12.0}", "rayon install + par_iter");
        println!("{:<42} {rayon_inside:>12.0} {:>12}", "rayon par_iter inside one install", "-");
    }
}
