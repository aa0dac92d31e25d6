//! Which models are resident, under one memory budget: loading on demand, waiting for a model
//! that is loading, unloading the least recently used idle model to make room, and unloading
//! idle models after their keep-alive.
//!
//! The registry knows each model's memory cost up front (the planner's estimate, computed by the
//! caller from the file's metadata) and counts a model from the moment its load starts until its
//! engine thread has exited, so the sum it admits never exceeds the budget.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine_handle::EngineHandle;
use crate::error::{EngineError, LoadError, Result};

/// A model the registry can load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// The name requests use in their `model` field.
    pub name: String,
    /// Bytes the model holds while resident: weights, KV pool, scratch.
    pub memory_bytes: u64,
    /// What the APIs tell about it.
    pub info: ModelInfo,
}

impl ModelEntry {
    /// An entry with no description beyond its name and memory.
    pub fn new(name: impl Into<String>, memory_bytes: u64) -> ModelEntry {
        ModelEntry { name: name.into(), memory_bytes, info: ModelInfo::default() }
    }
}

/// What the APIs say about a model besides its name, read from its file by whoever builds the
/// entry. Plain data: the registry never looks at it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// `general.architecture`: `"qwen2"`, `"gemma3"`, ...
    pub architecture: String,
    pub num_parameters: u64,
    /// The file's quantization as people name it (`"Q4_K_M"`), or its mix of tensor types.
    pub quantization: String,
    pub file_bytes: u64,
    /// The file's modification time, seconds since the Unix epoch.
    pub modified_unix_secs: u64,
    /// Context length the server gives each sequence.
    pub context_length: usize,
    /// The chat template the file carries, if any.
    pub chat_template: Option<String>,
    /// How it pools embeddings, when it serves them.
    pub pooling: Option<crate::Pooling>,
}

/// How long an idle model stays resident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// Until the registry needs its memory for another model, or shuts down.
    Forever,
    /// Unloaded once idle this long (zero: as soon as its last request ends).
    For(Duration),
}

impl KeepAlive {
    fn expired(self, idle_for: Duration) -> bool {
        match self {
            KeepAlive::Forever => false,
            KeepAlive::For(limit) => idle_for >= limit,
        }
    }
}

/// Loads one entry's model and starts its engine; errors are reported to every waiting request.
/// [`ModelRegistry::new`] takes a loader of any error type and keeps it in this form.
pub type ModelLoader =
    dyn Fn(&ModelEntry) -> std::result::Result<EngineHandle, LoadError> + Send + Sync;

/// How the registry behaves.
#[derive(Clone, Copy, Debug)]
pub struct RegistryConfig {
    /// Bytes all resident (and loading) models may hold together.
    pub budget_bytes: u64,
    /// Keep-alive of a model whose requests did not set one.
    pub default_keep_alive: KeepAlive,
    /// How often idle models are checked against their keep-alive.
    pub check_interval: Duration,
}

/// Where a model stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Not in memory; loaded by the first request that names it.
    Available,
    Loading,
    Resident,
    /// Its engine failed (see [`EngineError::EngineFailed`]) and was unloaded, or is being; the
    /// next request loads it afresh.
    Failed,
}

/// One model as the APIs list it.
#[derive(Clone, Debug)]
pub struct ModelStatus {
    pub entry: ModelEntry,
    pub residency: Residency,
    /// The running engine, when resident.
    pub engine: Option<EngineHandle>,
    /// Time since the model last had work, when resident.
    pub idle_for: Option<Duration>,
    pub keep_alive: KeepAlive,
    /// Why its engine last failed, until a load succeeds again.
    pub failure: Option<String>,
}

/// The models of one server. Cloning is cheap; every clone is the same registry.
#[derive(Clone)]
pub struct ModelRegistry {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ModelRegistry").field("config", &self.shared.config).finish()
    }
}

struct Shared {
    config: RegistryConfig,
    loader: Box<ModelLoader>,
    state: Mutex<State>,
    /// Signalled when a load ends, a lease ends, or the registry shuts down.
    changed: Condvar,
    keep_alive_thread: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    slots: Vec<Slot>,
    /// Memory of engines taken out of their slots whose threads have not exited yet.
    unloading_bytes: u64,
    shutting_down: bool,
}

struct Slot {
    entry: ModelEntry,
    engine: Option<EngineHandle>,
    loading: bool,
    /// Leases not yet returned: the model is busy while any exists.
    num_leases: usize,
    /// Last moment the model had a lease or a request in flight.
    last_active: Instant,
    keep_alive: KeepAlive,
    /// Counts finished loads, so a waiter can tell that the load it waited for has ended.
    num_load_attempts: u64,
    last_load_error: Option<LoadError>,
    /// Why the engine last failed, kept until a load succeeds.
    failure: Option<String>,
}

impl Slot {
    fn is_idle(&self) -> bool {
        self.num_leases == 0 && self.engine.as_ref().is_some_and(|e| e.num_in_flight() == 0)
    }

    /// Memory the slot holds or is about to hold.
    fn held_bytes(&self) -> u64 {
        if self.engine.is_some() || self.loading {
            self.entry.memory_bytes
        } else {
            0
        }
    }
}

impl State {
    fn slot_index(&self, name: &str) -> Result<usize> {
        self.slots
            .iter()
            .position(|slot| slot.entry.name == name)
            .ok_or_else(|| EngineError::UnknownModel { name: name.to_owned() })
    }

    fn slot_mut(&mut self, name: &str) -> Result<&mut Slot> {
        let index = self.slot_index(name)?;
        Ok(&mut self.slots[index])
    }

    fn held_bytes(&self) -> u64 {
        self.unloading_bytes + self.slots.iter().map(Slot::held_bytes).sum::<u64>()
    }

    /// Takes out the engine of slot `index` if it failed, recording why, for [`Shared::unload`].
    fn take_failed_engine(&mut self, index: usize) -> Option<(EngineHandle, u64)> {
        let slot = &mut self.slots[index];
        let failure = slot.engine.as_ref()?.failure()?.to_owned();
        tracing::error!(model = %slot.entry.name, %failure, "the engine failed; unloading it");
        slot.failure = Some(failure);
        self.take_engine(index)
    }

    /// Takes the engine out of slot `index`; its memory stays counted until [`Shared::unload`].
    fn take_engine(&mut self, index: usize) -> Option<(EngineHandle, u64)> {
        let slot = &mut self.slots[index];
        let engine = slot.engine.take()?;
        self.unloading_bytes += slot.entry.memory_bytes;
        Some((engine, slot.entry.memory_bytes))
    }
}

/// What making room for a model found.
enum Room {
    /// These idle engines, taken out of their slots, are to be unloaded; then it fits.
    Made(Vec<(EngineHandle, u64)>),
    /// It fits once engines already being unloaded are gone.
    AfterUnloading,
}

/// A resident model reserved for one request: while a lease exists the model is not unloaded.
/// Submit through [`ModelLease::engine`], then drop the lease; the requests in flight keep the
/// model busy on their own.
#[derive(Debug)]
pub struct ModelLease {
    engine: EngineHandle,
    name: String,
    registry: ModelRegistry,
}

impl ModelLease {
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }
}

impl Drop for ModelLease {
    fn drop(&mut self) {
        let shared = &self.registry.shared;
        let mut state = shared.lock();
        if let Ok(slot) = state.slot_mut(&self.name) {
            slot.num_leases = slot.num_leases.saturating_sub(1);
            slot.last_active = Instant::now();
        }
        drop(state);
        shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain bookkeeping behind, still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Shuts down engines taken with [`State::take_engine`] (idle: at once) and releases their
    /// memory from the count once their threads, and with them the models, are gone.
    fn unload(&self, engines: Vec<(EngineHandle, u64)>, why: &str) {
        for (engine, memory_bytes) in engines {
            tracing::info!(model = engine.model_name(), why, "unloading");
            engine.shutdown(Duration::ZERO);
            drop(engine);
            let mut state = self.lock();
            state.unloading_bytes -= memory_bytes;
        }
        uma_kernels::memory::return_freed_memory();
        self.changed.notify_all();
    }
}

impl ModelRegistry {
    /// A registry over `entries` (none loaded yet) that loads with `loader`, whose errors
    /// reach the requests as [`EngineError::LoadFailed`]. Starts the thread that unloads models
    /// past their keep-alive.
    pub fn new<E>(
        entries: Vec<ModelEntry>,
        config: RegistryConfig,
        loader: impl Fn(&ModelEntry) -> std::result::Result<EngineHandle, E> + Send + Sync + 'static,
    ) -> Result<ModelRegistry>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut names = HashMap::new();
        for entry in &entries {
            if names.insert(entry.name.clone(), ()).is_some() {
                return Err(EngineError::InvalidConfig {
                    reason: format!("two models are named {:?}", entry.name),
                });
            }
        }
        let now = Instant::now();
        let slots = entries
            .into_iter()
            .map(|entry| Slot {
                entry,
                engine: None,
                loading: false,
                num_leases: 0,
                last_active: now,
                keep_alive: config.default_keep_alive,
                num_load_attempts: 0,
                last_load_error: None,
                failure: None,
            })
            .collect();
        let registry = ModelRegistry {
            shared: Arc::new(Shared {
                config,
                loader: Box::new(move |entry| {
                    loader(entry).map_err(|error| {
                        let error: Box<dyn std::error::Error + Send + Sync> = error.into();
                        LoadError::from(error)
                    })
                }),
                state: Mutex::new(State { slots, unloading_bytes: 0, shutting_down: false }),
                changed: Condvar::new(),
                keep_alive_thread: Mutex::new(None),
            }),
        };
        let worker = Arc::downgrade(&registry.shared);
        let thread = std::thread::Builder::new()
            .name("uma-keep-alive".into())
            .spawn(move || unload_expired_until_shutdown(&worker))
            .map_err(EngineError::Thread)?;
        *registry.shared.keep_alive_thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(registry)
    }

    /// The memory budget all models share.
    pub fn budget_bytes(&self) -> u64 {
        self.shared.config.budget_bytes
    }

    /// Bytes held by resident and loading models.
    pub fn held_bytes(&self) -> u64 {
        self.shared.lock().held_bytes()
    }

    /// Every model, in the order given, with where it stands.
    pub fn models(&self) -> Vec<ModelStatus> {
        let state = self.shared.lock();
        let now = Instant::now();
        state
            .slots
            .iter()
            .map(|slot| ModelStatus {
                entry: slot.entry.clone(),
                residency: match (&slot.engine, slot.loading) {
                    (Some(engine), _) if engine.failure().is_some() => Residency::Failed,
                    (Some(_), _) => Residency::Resident,
                    (None, true) => Residency::Loading,
                    (None, false) if slot.failure.is_some() => Residency::Failed,
                    (None, false) => Residency::Available,
                },
                engine: slot.engine.clone(),
                idle_for: slot.engine.as_ref().map(|_| {
                    if slot.is_idle() {
                        now - slot.last_active
                    } else {
                        Duration::ZERO
                    }
                }),
                keep_alive: slot.keep_alive,
                failure: slot
                    .engine
                    .as_ref()
                    .and_then(|engine| engine.failure().map(str::to_owned))
                    .or_else(|| slot.failure.clone()),
            })
            .collect()
    }

    /// The model `name`, loaded if needed (waiting for a load in progress), reserved until the
    /// lease drops. The model then stays loaded, once idle, for `keep_alive` (the registry's
    /// default when `None`), until a later request says otherwise. A failed engine is unloaded
    /// and the model loaded afresh.
    /// Blocking: it may load a model (seconds).
    pub fn acquire(&self, name: &str, keep_alive: Option<KeepAlive>) -> Result<ModelLease> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let mut waited_for: Option<u64> = None;
        loop {
            if state.shutting_down {
                return Err(EngineError::ShuttingDown);
            }
            let index = state.slot_index(name)?;
            if let Some(failed) = state.take_failed_engine(index) {
                drop(state);
                shared.unload(vec![failed], "its engine failed");
                state = shared.lock();
                continue;
            }
            let slot = &mut state.slots[index];
            // As in Ollama, each request sets how long the model stays after it.
            slot.keep_alive = keep_alive.unwrap_or(shared.config.default_keep_alive);
            if let Some(engine) = &slot.engine {
                slot.num_leases += 1;
                slot.last_active = Instant::now();
                return Ok(self.lease(engine.clone(), name));
            }
            if slot.loading {
                waited_for = Some(slot.num_load_attempts);
                state = shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // The load we waited for failed: report it rather than try again at once.
            if waited_for.is_some_and(|attempt| attempt != slot.num_load_attempts) {
                if let Some(error) = slot.last_load_error.clone() {
                    return Err(EngineError::LoadFailed { name: name.to_owned(), error });
                }
            }
            let evicted = match self.make_room(&mut state, name)? {
                Room::Made(evicted) => evicted,
                Room::AfterUnloading => {
                    // Engines being unloaded will free enough within moments.
                    state = shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
            };
            let slot = state.slot_mut(name)?;
            slot.loading = true;
            slot.num_leases += 1;
            let entry = slot.entry.clone();
            drop(state);
            shared.unload(evicted, "to make room");
            tracing::info!(model = %entry.name, memory_mib = entry.memory_bytes >> 20, "loading");
            let started = Instant::now();
            let loaded = (shared.loader)(&entry);
            let mut state = shared.lock();
            let slot = state.slot_mut(name)?;
            slot.loading = false;
            slot.num_load_attempts += 1;
            slot.last_active = Instant::now();
            let result = match loaded {
                Ok(engine) => {
                    tracing::info!(model = %entry.name, seconds = started.elapsed().as_secs_f64(), "loaded");
                    slot.engine = Some(engine.clone());
                    slot.last_load_error = None;
                    slot.failure = None;
                    Ok(self.lease(engine, name))
                }
                Err(error) => {
                    tracing::error!(model = %entry.name, %error, "load failed");
                    slot.num_leases -= 1;
                    slot.last_load_error = Some(error.clone());
                    Err(EngineError::LoadFailed { name: name.to_owned(), error })
                }
            };
            let shutting_down = state.shutting_down;
            drop(state);
            shared.changed.notify_all();
            if shutting_down {
                // Shutdown began during the load and could not see this engine.
                if let Ok(lease) = &result {
                    lease.engine.shutdown(Duration::ZERO);
                }
                return Err(EngineError::ShuttingDown);
            }
            return result;
        }
    }

    fn lease(&self, engine: EngineHandle, name: &str) -> ModelLease {
        ModelLease { engine, name: name.to_owned(), registry: self.clone() }
    }

    /// Chooses the idle models to unload, least recently active first, so that `name` fits,
    /// and takes them out of their slots for the caller to unload. Errors when even unloading
    /// every idle model would not make room.
    fn make_room(&self, state: &mut State, name: &str) -> Result<Room> {
        let budget_bytes = self.shared.config.budget_bytes;
        let needed = state.slot_mut(name)?.entry.memory_bytes;
        if needed > budget_bytes {
            return Err(EngineError::ModelTooLarge {
                name: name.to_owned(),
                memory_bytes: needed,
                budget_bytes,
            });
        }
        let mut idle: Vec<usize> =
            (0..state.slots.len()).filter(|&i| state.slots[i].is_idle()).collect();
        idle.sort_by_key(|&i| state.slots[i].last_active);
        let mut held = state.held_bytes();
        let mut chosen = Vec::new();
        for index in idle {
            if held + needed <= budget_bytes {
                break;
            }
            held -= state.slots[index].entry.memory_bytes;
            chosen.push(index);
        }
        if held + needed > budget_bytes && held - state.unloading_bytes + needed <= budget_bytes {
            return Ok(Room::AfterUnloading);
        }
        if held + needed > budget_bytes {
            let busy = state
                .slots
                .iter()
                .filter(|slot| slot.held_bytes() > 0 && !slot.is_idle())
                .map(|slot| slot.entry.name.clone())
                .collect();
            return Err(EngineError::NoRoom {
                name: name.to_owned(),
                memory_bytes: needed,
                budget_bytes,
                held_bytes: state.held_bytes(),
                busy,
            });
        }
        Ok(Room::Made(chosen.into_iter().filter_map(|index| state.take_engine(index)).collect()))
    }

    /// Loads `name` now (as a request would) and keeps it resident as its keep-alive says.
    pub fn preload(&self, name: &str) -> Result<()> {
        self.acquire(name, None).map(drop)
    }

    /// Stops accepting requests, lets every resident model finish its requests within `grace`,
    /// and unloads them all. Blocking.
    pub fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        let engines: Vec<(EngineHandle, u64)> = {
            let mut state = shared.lock();
            state.shutting_down = true;
            (0..state.slots.len()).filter_map(|index| state.take_engine(index)).collect()
        };
        shared.changed.notify_all();
        let deadline = Instant::now() + grace;
        // Engines drain at the same time; each gets what is left of the one grace period.
        std::thread::scope(|scope| {
            for (engine, _) in &engines {
                scope.spawn(move || {
                    engine.shutdown(deadline.saturating_duration_since(Instant::now()))
                });
            }
        });
        let thread = shared.keep_alive_thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The keep-alive thread: unloads idle models whose keep-alive has run out, until the registry
/// shuts down or is dropped.
fn unload_expired_until_shutdown(registry: &Weak<Shared>) {
    while let Some(shared) = registry.upgrade() {
        let mut state = shared.lock();
        if state.shutting_down {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut failed = Vec::new();
        for index in 0..state.slots.len() {
            if let Some(engine) = state.take_failed_engine(index) {
                failed.push(engine);
                continue;
            }
            let slot = &mut state.slots[index];
            if slot.engine.is_none() {
                continue;
            }
            if !slot.is_idle() {
                slot.last_active = now;
            } else if slot.keep_alive.expired(now - slot.last_active) {
                expired.extend(state.take_engine(index));
            }
        }
        if expired.is_empty() && failed.is_empty() {
            let interval = shared.config.check_interval;
            drop(shared.changed.wait_timeout(state, interval));
        } else {
            drop(state);
            shared.unload(failed, "its engine failed");
            shared.unload(expired, "keep-alive expired");
        }
    }
}
