//! A persistent thread pool for the kernels' parallel regions.
//!
//! One [`ThreadPool::run`] call is one parallel region: the calling thread and the pool's
//! workers claim task indices from one atomic counter until none are left. Workers live as long
//! as the pool; between regions they spin for [`SPIN_TIME`] (back-to-back regions, as in a
//! forward pass, then cost no system call) and then park, so an idle pool burns no CPU.
//!
//! A worker joins a region only if it arrives while the region is open: once the caller has
//! claimed the last task it closes the region and waits only for the workers inside. So a
//! small region never waits for a parked worker to wake up, and a worker that wakes late simply
//! joins whatever region is open then.
//!
//! Why not rayon: a region here costs no heap allocation and no work stealing machinery, the
//! caller works instead of blocking, and a task learns which thread runs it, so kernels can keep
//! per-thread scratch buffers in a plain slice indexed by thread.
//!
//! Rules, each chosen so that no combination of calls deadlocks:
//! - A `run` from inside a task of the same pool runs inline on that thread, with that thread's
//!   index (its tasks cannot overlap the enclosing task's other uses of the index: they run on
//!   the same thread, in sequence).
//! - Two threads calling `run` on the same pool at once are serialized by a lock: each region
//!   gets the whole pool, and a thread index is never used by two tasks at the same time.
//! - A task of pool A may start a region of another pool B (its thread becomes B's thread 0),
//!   but, as with two locks, tasks of B must then not start regions of A at the same time.
//! - A panic in a task is caught; the region finishes (the remaining tasks still run) and the
//!   first panic is re-raised in the caller of `run`. Workers survive.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks: long enough to bridge the serial gaps
/// between the regions of one forward pass, short enough that an idle pool goes quiet at once.
pub const SPIN_TIME: Duration = Duration::from_micros(50);

/// How long the caller of `run` spins waiting for the workers still inside its region before it
/// sleeps: that wait is part of the region (the caller's core has nothing else to do), and a
/// sleeping caller costs a wake-up at the end.
pub const CALLER_SPIN_TIME: Duration = Duration::from_micros(200);

/// A task as the pool calls it: `(task index, thread index)`.
type Task = dyn Fn(usize, usize) + Sync;

/// The region a pool starts and ends with, never run.
static NO_TASK: fn(usize, usize) = |_, _| {};

/// The global pool.
static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();

thread_local! {
    /// The pool (its [`ThreadPool::id`]) whose task this thread is running, and the thread's
    /// index in it; `(0, 0)` outside any task.
    static CURRENT: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// [`Header::state`]: the region's epoch in bits 32..64, [`CLOSED`], and the number of workers
/// inside the region in bits 0..31.
const CLOSED: u64 = 1 << 31;
const INSIDE: u64 = CLOSED - 1;
/// Added to a closed state, clears [`CLOSED`] and carries into the epoch: opens the next region
/// (the inside count, 0 then, is kept as it is).
const OPEN_NEXT: u64 = 1 << 31;

fn epoch(state: u64) -> u64 {
    state >> 32
}

/// Keeps a value on its own cache line, so the counters that every thread hammers do not
/// false-share with each other.
#[repr(align(128))]
struct CachePadded<T>(T);

/// The region being run: written by the caller between regions only.
#[derive(Clone, Copy)]
struct Region {
    /// The caller's task with its lifetime erased; valid until the caller's `run` returns,
    /// which it does only after every worker that entered the region has left it.
    task: *const Task,
    num_tasks: usize,
}

/// What a worker reads to join a region, on one cache line.
#[repr(align(128))]
struct Header {
    state: AtomicU64,
    region: UnsafeCell<Region>,
}

/// State shared by the pool handle and its workers.
struct Shared {
    header: Header,
    /// The next task index to claim.
    next: CachePadded<AtomicUsize>,
    /// One flag per worker: it is parked, or about to park, and needs an unpark.
    sleeping: Box<[CachePadded<AtomicBool>]>,
    shutdown: AtomicBool,
    /// The caller sleeps on `done` (under `done_lock`) until no worker is inside its region.
    caller_sleeping: AtomicBool,
    done_lock: Mutex<()>,
    done: Condvar,
    /// The first panic of the current region.
    panicked: AtomicBool,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `header.region` is the only field that is not `Sync` by itself. The caller writes it
// only while holding the pool's region lock, while the previous region is closed and empty (it
// saw the inside count at 0 with acquire ordering, after every worker's release decrement), and
// before opening the next region (release). A worker reads it only after entering an open
// region (acquire) and before leaving it. The task it points to is `Sync`, so calling it from
// several threads at once is allowed.
#[allow(unsafe_code)]
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw task pointer is only dereferenced inside the region it belongs to.
#[allow(unsafe_code)]
unsafe impl Send for Shared {}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a task panicked while another thread held it; the data it
    // guards (`()` or a panic payload) stays consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins until `done()` holds or about `limit` has passed; returns whether it holds.
#[inline]
fn spin_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let mut start: Option<Instant> = None;
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        let now = Instant::now();
        if now.duration_since(*start.get_or_insert(now)) >= limit {
            return done();
        }
    }
}

impl Shared {
    /// Claims and runs tasks of `region` until none are left.
    #[allow(unsafe_code)]
    fn work(&self, region: Region, thread_index: usize) {
        // SAFETY: this thread is the caller of `run` or a worker inside the region, and the
        // caller keeps the task alive until every worker inside has left (see `Region::task`).
        let task = unsafe { &*region.task };
        loop {
            let i = self.next.0.fetch_add(1, Ordering::Relaxed);
            if i >= region.num_tasks {
                return;
            }
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| task(i, thread_index))) {
                let mut first = lock(&self.panic);
                if first.is_none() {
                    *first = Some(payload);
                    self.panicked.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Waits (spinning, then parked) until the epoch is no longer `seen`.
    fn wait_for_region(&self, worker: usize, seen: u64) {
        let state = &self.header.state;
        if spin_until(SPIN_TIME, || epoch(state.load(Ordering::Acquire)) != seen) {
            return;
        }
        let sleeping = &self.sleeping[worker].0;
        // Announce the nap, then check the epoch once more: with both sides sequentially
        // consistent, either this load sees the caller's new epoch or the caller sees the flag
        // and unparks this thread.
        sleeping.store(true, Ordering::SeqCst);
        while epoch(state.load(Ordering::SeqCst)) == seen {
            thread::park();
        }
        sleeping.store(false, Ordering::Relaxed);
    }

    /// A worker leaves the region it entered (or tried to enter); the last one out of a closed
    /// region wakes its caller if that sleeps.
    fn leave(&self) {
        let state = self.header.state.fetch_sub(1, Ordering::SeqCst) - 1;
        if state & CLOSED != 0 && state & INSIDE == 0 && self.caller_sleeping.load(Ordering::SeqCst)
        {
            // The caller holds `done_lock` from setting its flag until it waits, so this
            // notification cannot fall between its check of the state and its wait.
            let _guard = lock(&self.done_lock);
            self.done.notify_one();
        }
    }

    /// The caller, its tasks all claimed, closes the region and waits for the workers inside.
    fn close_and_wait(&self) {
        let state = &self.header.state;
        let empty = || state.load(Ordering::Acquire) & INSIDE == 0;
        if state.fetch_or(CLOSED, Ordering::SeqCst) & INSIDE == 0
            || spin_until(CALLER_SPIN_TIME, empty)
        {
            return;
        }
        let mut guard = lock(&self.done_lock);
        // The same handshake as the workers' `sleeping` flag, against `leave`.
        self.caller_sleeping.store(true, Ordering::SeqCst);
        while state.load(Ordering::SeqCst) & INSIDE != 0 {
            guard = self.done.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        self.caller_sleeping.store(false, Ordering::Relaxed);
    }
}

#[allow(unsafe_code)]
fn worker_main(shared: Arc<Shared>, worker: usize) {
    let thread_index = worker + 1;
    CURRENT.set((Arc::as_ptr(&shared) as usize, thread_index));
    let mut seen = 0;
    loop {
        shared.wait_for_region(worker, seen);
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let state = shared.header.state.fetch_add(1, Ordering::AcqRel);
        seen = epoch(state);
        if state & CLOSED == 0 {
            // SAFETY: this worker is inside an open region: the caller wrote `region` before
            // opening it (acquire above) and does not write it again before this worker leaves.
            let region = unsafe { *shared.header.region.get() };
            shared.work(region, thread_index);
        }
        shared.leave();
    }
}

/// Sets [`CURRENT`] for its lifetime and restores the previous value, even on unwind.
struct CurrentScope {
    previous: (usize, usize),
}

impl CurrentScope {
    fn enter(pool: usize, thread_index: usize) -> CurrentScope {
        CurrentScope { previous: CURRENT.replace((pool, thread_index)) }
    }
}

impl Drop for CurrentScope {
    fn drop(&mut self) {
        CURRENT.set(self.previous);
    }
}

/// A fixed set of threads (the caller counted as one) that run parallel regions.
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// The workers' handles, for unpark.
    threads: Vec<Thread>,
    workers: Vec<JoinHandle<()>>,
    /// Held by the thread whose region runs: one region at a time.
    region_lock: Mutex<()>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool").field("num_threads", &self.num_threads()).finish()
    }
}

impl ThreadPool {
    /// A pool of `num_threads` threads, counting the calling thread: spawns `num_threads − 1`
    /// workers. `0` counts as 1. Should the system refuse a thread, the pool keeps the workers
    /// it got ([`ThreadPool::num_threads`] says how many).
    pub fn new(num_threads: usize) -> ThreadPool {
        let num_workers = num_threads.max(1) - 1;
        let shared = Arc::new(Shared {
            header: Header {
                state: AtomicU64::new(CLOSED),
                region: UnsafeCell::new(Region { task: &NO_TASK, num_tasks: 0 }),
            },
            next: CachePadded(AtomicUsize::new(0)),
            sleeping: (0..num_workers).map(|_| CachePadded(AtomicBool::new(false))).collect(),
            shutdown: AtomicBool::new(false),
            caller_sleeping: AtomicBool::new(false),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            panicked: AtomicBool::new(false),
            panic: Mutex::new(None),
        });
        let mut workers = Vec::with_capacity(num_workers);
        for worker in 0..num_workers {
            let for_worker = Arc::clone(&shared);
            let spawned = thread::Builder::new()
                .name(format!("uma-worker-{}", worker + 1))
                .spawn(move || worker_main(for_worker, worker));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(_) => break,
            }
        }
        let threads = workers.iter().map(|w| w.thread().clone()).collect();
        ThreadPool { shared, threads, workers, region_lock: Mutex::new(()) }
    }

    /// Threads that run tasks, the caller of `run` included.
    pub fn num_threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `task(i)` for every `i` in `0..num_tasks` on the pool's threads (the caller works
    /// too) and returns when all are done. Tasks are claimed one at a time from a shared
    /// counter, so uneven tasks balance.
    ///
    /// Runs inline when `num_tasks ≤ 1`, on a 1-thread pool, or when called from a task of this
    /// pool. A concurrent call from another thread waits for this one to finish. Panics with
    /// the first panic of a task, after all tasks have run.
    pub fn run(&self, num_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        self.run_on_threads(num_tasks, &|i, _| task(i));
    }

    /// Calls `f(i, chunk)` for every `chunk_len`-element chunk `i` of `data` (the last may be
    /// shorter), the chunks spread over the pool: a safe way to fill disjoint rows in parallel.
    #[allow(unsafe_code)]
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: &(dyn Fn(usize, &mut [T]) + Sync),
    ) {
        let chunk_len = chunk_len.max(1);
        let num_chunks = data.len().div_ceil(chunk_len);
        // A few tasks per thread balance uneven progress; small jobs stay on the caller.
        let chunks_per_task = num_chunks.div_ceil(self.num_threads() * 4).max(1);
        let num_tasks = num_chunks.div_ceil(chunks_per_task);
        let len = data.len();
        let shared = crate::parallel::SharedSlice::new(data);
        self.run(num_tasks, &|task| {
            for chunk in task * chunks_per_task..((task + 1) * chunks_per_task).min(num_chunks) {
                let start = chunk * chunk_len;
                let end = (start + chunk_len).min(len);
                // SAFETY: every chunk index belongs to exactly one task.
                f(chunk, unsafe { shared.slice_mut(start, end - start) });
            }
        });
    }

    /// As [`ThreadPool::run`], and tells the task which thread (`0..num_threads`, the caller is
    /// 0) runs it, for per-thread scratch: two tasks with the same thread index never run at
    /// the same time.
    #[allow(unsafe_code)]
    pub fn run_on_threads(&self, num_tasks: usize, task: &(dyn Fn(usize, usize) + Sync)) {
        if num_tasks == 0 {
            return;
        }
        let id = self.id();
        let (current_pool, current_index) = CURRENT.get();
        if current_pool == id {
            // Nested: the enclosing region already occupies every thread.
            (0..num_tasks).for_each(|i| task(i, current_index));
            return;
        }
        let region_guard = lock(&self.region_lock);
        let scope = CurrentScope::enter(id, 0);
        if num_tasks == 1 || self.workers.is_empty() {
            (0..num_tasks).for_each(|i| task(i, 0));
            return;
        }

        // SAFETY: only the lifetime changes (same fat pointer layout). The pointer is
        // dereferenced only inside this region, and this function returns only after every
        // worker inside has left it (`close_and_wait`), so the task outlives every use.
        let erased =
            unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), *const Task>(task) };
        let region = Region { task: erased, num_tasks };
        let shared = &*self.shared;
        self.open(region);
        // Wake as many parked workers as there are tasks beyond the caller's first.
        let mut to_wake = num_tasks - 1;
        for (flag, thread) in shared.sleeping.iter().zip(&self.threads) {
            if to_wake == 0 {
                break;
            }
            if flag.0.load(Ordering::SeqCst) {
                thread.unpark();
                to_wake -= 1;
            }
        }
        shared.work(region, 0);
        shared.close_and_wait();

        drop(scope);
        let payload = if shared.panicked.load(Ordering::Acquire) {
            shared.panicked.store(false, Ordering::Relaxed);
            lock(&shared.panic).take()
        } else {
            None
        };
        drop(region_guard);
        if let Some(payload) = payload {
            panic::resume_unwind(payload);
        }
    }

    /// Publishes `region` and opens it. The caller holds the region lock.
    #[allow(unsafe_code)]
    fn open(&self, region: Region) {
        let shared = &*self.shared;
        // SAFETY: the region lock is held and the previous region is closed with no worker
        // inside (see `Shared`'s `Sync` impl), so no other thread reads `region` now.
        unsafe { *shared.header.region.get() = region };
        shared.next.0.store(0, Ordering::Relaxed);
        // Publishes `region` and `next` (release), and orders against the workers' `sleeping`
        // flags (sequentially consistent; see `wait_for_region`).
        shared.header.state.fetch_add(OPEN_NEXT, Ordering::SeqCst);
    }

    /// The process-wide pool, created on first use with [`ThreadPool::set_global_threads`]'
    /// count, or else [`physical_cores`]. It lives until the process ends.
    pub fn global() -> &'static ThreadPool {
        GLOBAL.get_or_init(|| ThreadPool::new(physical_cores()))
    }

    /// Creates the global pool with `num_threads` threads (`0` counts as 1). `Err(current
    /// size)` if the global pool already exists with another size.
    pub fn set_global_threads(num_threads: usize) -> Result<(), usize> {
        let num_threads = num_threads.max(1);
        let pool = GLOBAL.get_or_init(|| ThreadPool::new(num_threads));
        if pool.num_threads() == num_threads {
            Ok(())
        } else {
            Err(pool.num_threads())
        }
    }

    /// Tells this pool apart from every other live pool (for nesting).
    fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // No region runs (`drop` has the pool to itself): open an empty one, which the workers
        // see as the signal to check `shutdown` (release: they see it set).
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.open(Region { task: &NO_TASK, num_tasks: 0 });
        for thread in &self.threads {
            thread.unpark();
        }
        for worker in self.workers.drain(..) {
            // Tasks' panics are caught, so a worker cannot have panicked.
            let _ = worker.join();
        }
    }
}

/// Physical cores (not SMT siblings) this process may run on, never more than
/// [`std::thread::available_parallelism`] (which also honours CPU quotas) and never below 1.
///
/// Linux: distinct `(physical_package_id, core_id)` pairs of the CPUs in the process's
/// affinity list, from `/sys/devices/system/cpu/cpu*/topology`, else from `/proc/cpuinfo`.
/// Elsewhere, or when neither can be read: `available_parallelism`.
pub fn physical_cores() -> usize {
    let available = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    topology::physical_cores().map_or(available, |cores| cores.clamp(1, available))
}

#[cfg(target_os = "linux")]
mod topology {
    use std::collections::HashSet;
    use std::fs;

    /// Distinct `(package, core)` pairs among the allowed CPUs, if any could be read.
    pub(super) fn physical_cores() -> Option<usize> {
        let allowed = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                    .and_then(|list| parse_cpu_list(list.trim()))
            })
            .unwrap_or_default();
        let is_allowed =
            |cpu: usize| allowed.is_empty() || allowed.iter().any(|&(a, b)| (a..=b).contains(&cpu));
        let cores = from_sysfs(&is_allowed).or_else(|| from_cpuinfo(&is_allowed))?;
        (!cores.is_empty()).then_some(cores.len())
    }

    /// A kernel CPU list (`0-3,8,10-11`) as inclusive ranges.
    pub(super) fn parse_cpu_list(list: &str) -> Option<Vec<(usize, usize)>> {
        list.split(',')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => part.trim().parse().ok().map(|cpu| (cpu, cpu)),
            })
            .collect()
    }

    fn from_sysfs(is_allowed: &dyn Fn(usize) -> bool) -> Option<HashSet<(u64, u64)>> {
        let mut cores = HashSet::new();
        for entry in fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
            let name = entry.file_name();
            let Some(cpu) = name.to_str().and_then(|n| n.strip_prefix("cpu")) else { continue };
            let Ok(cpu) = cpu.parse::<usize>() else { continue };
            if !is_allowed(cpu) {
                continue;
            }
            let read = |file: &str| -> Option<u64> {
                fs::read_to_string(entry.path().join("topology").join(file))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            if let (Some(package), Some(core)) = (read("physical_package_id"), read("core_id")) {
                cores.insert((package, core));
            }
        }
        (!cores.is_empty()).then_some(cores)
    }

    fn from_cpuinfo(is_allowed: &dyn Fn(usize) -> bool) -> Option<HashSet<(u64, u64)>> {
        let text = fs::read_to_string("/proc/cpuinfo").ok()?;
        Some(parse_cpuinfo(&text, is_allowed))
    }

    /// `(physical id, core id)` pairs of the allowed processors of a `/proc/cpuinfo` text.
    pub(super) fn parse_cpuinfo(
        text: &str,
        is_allowed: &dyn Fn(usize) -> bool,
    ) -> HashSet<(u64, u64)> {
        let mut cores = HashSet::new();
        for processor in text.split("\n\n") {
            let field = |key: &str| -> Option<u64> {
                processor.lines().find_map(|line| {
                    let (k, v) = line.split_once(':')?;
                    (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
                })
            };
            let Some(cpu) = field("processor") else { continue };
            if !usize::try_from(cpu).is_ok_and(is_allowed) {
                continue;
            }
            if let (Some(package), Some(core)) = (field("physical id"), field("core id")) {
                cores.insert((package, core));
            }
        }
        cores
    }
}

#[cfg(not(target_os = "linux"))]
mod topology {
    pub(super) fn physical_cores() -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn counters(n: usize) -> Vec<AtomicUsize> {
        (0..n).map(|_| AtomicUsize::new(0)).collect()
    }

    #[test]
    fn every_task_runs_exactly_once() {
        for num_threads in [1, 2, 3, 4, 8] {
            let pool = ThreadPool::new(num_threads);
            assert_eq!(pool.num_threads(), num_threads);
            for num_tasks in [0, 1, 2, 3, 7, 8, 9, 64, 1000] {
                for _ in 0..20 {
                    let counts = counters(num_tasks);
                    pool.run(num_tasks, &|i| {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    });
                    for (i, c) in counts.iter().enumerate() {
                        assert_eq!(c.load(Ordering::Relaxed), 1, "{num_threads} threads, task {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn thread_indices_are_in_range_and_never_overlap() {
        for num_threads in [1, 2, 4, 6] {
            let pool = ThreadPool::new(num_threads);
            let busy: Vec<AtomicBool> = (0..num_threads).map(|_| AtomicBool::new(false)).collect();
            let used = counters(num_threads);
            for _ in 0..50 {
                pool.run_on_threads(200, &|i, t| {
                    assert!(t < num_threads, "thread index {t} of {num_threads}");
                    assert!(!busy[t].swap(true, Ordering::AcqRel), "thread index {t} overlaps");
                    used[t].fetch_add(1, Ordering::Relaxed);
                    // Uneven work, so that threads interleave.
                    for _ in 0..(i % 7) * 50 {
                        std::hint::spin_loop();
                    }
                    busy[t].store(false, Ordering::Release);
                });
            }
            let total: usize = used.iter().map(|u| u.load(Ordering::Relaxed)).sum();
            assert_eq!(total, 50 * 200);
        }
    }

    #[test]
    fn nested_run_is_inline_on_the_same_thread() {
        let pool = ThreadPool::new(4);
        let counts = counters(16 * 5);
        pool.run_on_threads(16, &|i, outer| {
            pool.run_on_threads(5, &|j, inner| {
                assert_eq!(inner, outer);
                counts[i * 5 + j].fetch_add(1, Ordering::Relaxed);
            });
            // Nested `run` too.
            pool.run(3, &|_| {});
        });
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn a_task_may_use_another_pool() {
        let outer = ThreadPool::new(3);
        let inner = ThreadPool::new(2);
        let counts = counters(6 * 10);
        outer.run(6, &|i| {
            inner.run_on_threads(10, &|j, t| {
                assert!(t < 2);
                counts[i * 10 + j].fetch_add(1, Ordering::Relaxed);
            });
        });
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn concurrent_callers_all_complete() {
        let pool = ThreadPool::new(4);
        let busy: Vec<AtomicBool> = (0..4).map(|_| AtomicBool::new(false)).collect();
        thread::scope(|scope| {
            for caller in 0..4usize {
                let (pool, busy) = (&pool, &busy);
                scope.spawn(move || {
                    for round in 0..300 {
                        let num_tasks = 1 + (caller * 7 + round) % 40;
                        let sum = AtomicUsize::new(0);
                        pool.run_on_threads(num_tasks, &|i, t| {
                            assert!(!busy[t].swap(true, Ordering::AcqRel), "index {t} overlaps");
                            sum.fetch_add(i + 1, Ordering::Relaxed);
                            busy[t].store(false, Ordering::Release);
                        });
                        assert_eq!(sum.into_inner(), num_tasks * (num_tasks + 1) / 2);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panic_propagates_and_the_pool_survives() {
        let pool = ThreadPool::new(4);
        let ran = counters(100);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(100, &|i| {
                ran[i].fetch_add(1, Ordering::Relaxed);
                if i % 10 == 3 {
                    panic!("task {i} fails");
                }
            });
        }));
        let payload = result.expect_err("the panic reaches the caller");
        let message = payload.downcast_ref::<String>().expect("a formatted panic message");
        assert!(message.starts_with("task ") && message.ends_with(" fails"), "{message}");
        // The region finished: every task ran once.
        assert!(ran.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        // Every thread still works.
        for _ in 0..10 {
            let counts = counters(64);
            pool.run(64, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        }
        // Inline runs propagate too, and leave the pool usable.
        let inline = panic::catch_unwind(AssertUnwindSafe(|| pool.run(1, &|_| panic!("one"))));
        assert!(inline.is_err());
        let seen = AtomicU32::new(0);
        pool.run(8, &|_| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(seen.into_inner(), 8);
    }

    #[test]
    fn idle_workers_park_and_wake_again() {
        let pool = ThreadPool::new(3);
        pool.run(3, &|_| {});
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pool.shared.sleeping.iter().all(|f| f.0.load(Ordering::SeqCst)) {
            assert!(Instant::now() < deadline, "workers never parked");
            thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..20 {
            let counts = counters(30);
            pool.run_on_threads(30, &|i, _| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            thread::sleep(SPIN_TIME * 3);
        }
    }

    #[test]
    fn the_caller_waits_for_slow_workers() {
        // Tasks longer than the spin time: the caller parks and is woken by the last worker.
        let pool = ThreadPool::new(3);
        let done = counters(6);
        pool.run(6, &|i| {
            thread::sleep(Duration::from_millis(2));
            done[i].fetch_add(1, Ordering::Release);
        });
        assert!(done.iter().all(|c| c.load(Ordering::Acquire) == 1));
    }

    #[test]
    fn for_each_chunk_mut_visits_every_chunk_once() {
        let pool = ThreadPool::new(3);
        for (len, chunk_len) in [(0, 4), (1, 4), (10, 3), (1000, 7), (64, 64)] {
            let mut data = vec![0usize; len];
            pool.for_each_chunk_mut(&mut data, chunk_len, &|i, chunk| {
                assert!(chunk.len() <= chunk_len);
                chunk.iter_mut().for_each(|v| *v += i + 1);
            });
            for (j, &v) in data.iter().enumerate() {
                assert_eq!(v, j / chunk_len + 1, "len {len} chunk {chunk_len} element {j}");
            }
        }
    }

    #[test]
    fn drop_joins_the_workers() {
        let pool = ThreadPool::new(4);
        pool.run(16, &|_| {});
        let shared = Arc::downgrade(&pool.shared);
        drop(pool);
        // Each worker held a strong reference until its thread ended.
        assert!(shared.upgrade().is_none());
        // A pool that never ran, and one whose workers are parked.
        drop(ThreadPool::new(3));
        let parked = ThreadPool::new(2);
        thread::sleep(SPIN_TIME * 10);
        drop(parked);
    }

    #[test]
    fn global_pool_size() {
        let pool = ThreadPool::global();
        assert!(pool.num_threads() >= 1);
        assert_eq!(ThreadPool::set_global_threads(pool.num_threads()), Ok(()));
        assert_eq!(ThreadPool::set_global_threads(pool.num_threads() + 1), Err(pool.num_threads()));
        let counts = counters(100);
        ThreadPool::global().run(100, &|i| {
            counts[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn physical_cores_is_within_bounds() {
        let available = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let cores = physical_cores();
        assert!((1..=available).contains(&cores), "{cores} of {available}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_lists_and_cpuinfo_parse() {
        assert_eq!(topology::parse_cpu_list("0-3,8,10-11"), Some(vec![(0, 3), (8, 8), (10, 11)]));
        assert_eq!(topology::parse_cpu_list("5"), Some(vec![(5, 5)]));
        assert_eq!(topology::parse_cpu_list("x"), None);
        // Two cores with two SMT siblings each, on one package.
        let cpuinfo = (0..4)
            .map(|p| format!("processor\t: {p}\nphysical id\t: 0\ncore id\t\t: {}\n", p % 2))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(topology::parse_cpuinfo(&cpuinfo, &|_| true).len(), 2);
        assert_eq!(topology::parse_cpuinfo(&cpuinfo, &|cpu| cpu == 0).len(), 1);
    }
}
