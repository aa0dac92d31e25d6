//! The model registry on real engines: loading on demand, one load for many waiting requests,
//! least-recently-used unloading under the budget, busy models kept, keep-alive expiry, load
//! failures, and shutdown. Every "model" here is the 0.5B test model under another name, each
//! load a real engine; the budget is counted in made-up units so the tests choose what fits.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use uma_engine::{
    EngineError, EngineHandle, GenerationRequest, KeepAlive, ModelEntry, ModelRegistry,
    RegistryConfig, Residency,
};
use uma_sampling::SamplingParams;

/// Loads counted per model name.
type LoadCounts = Arc<Mutex<HashMap<String, usize>>>;

/// A registry over models `a`, `b`, `c`, … of `unit` bytes each (`d` is bigger than the budget),
/// under a budget of `budget_units`, whose loader counts loads and can be told to fail or be
/// slow.
struct Fixture {
    registry: ModelRegistry,
    loads: LoadCounts,
    failing: Arc<Mutex<bool>>,
}

const UNIT: u64 = 1 << 30;

fn fixture(budget_units: u64, keep_alive: KeepAlive, load_delay: Duration) -> Fixture {
    let entries = ["a", "b", "c"]
        .into_iter()
        .map(|name| ModelEntry::new(name, UNIT))
        .chain([ModelEntry::new("d", (budget_units + 1) * UNIT)])
        .collect();
    let loads: LoadCounts = Arc::default();
    let failing = Arc::new(Mutex::new(false));
    let config = RegistryConfig {
        budget_bytes: budget_units * UNIT,
        default_keep_alive: keep_alive,
        check_interval: Duration::from_millis(20),
    };
    let (counted, fails) = (loads.clone(), failing.clone());
    let loader = Box::new(move |entry: &ModelEntry| {
        thread::sleep(load_delay);
        *counted.lock().expect("lock").entry(entry.name.clone()).or_default() += 1;
        if *fails.lock().expect("lock") {
            return Err("the file vanished".to_owned());
        }
        let engine = EngineHandle::start(
            common::model(),
            common::prompt_encoder(),
            entry.name.clone(),
            common::config(256, 2),
        );
        engine.map_err(|error| error.to_string())
    });
    let registry = ModelRegistry::new(entries, config, loader).expect("registry");
    Fixture { registry, loads, failing }
}

impl Fixture {
    fn residency(&self) -> String {
        let letter = |residency| match residency {
            Residency::Available => '-',
            Residency::Loading => 'L',
            Residency::Resident => 'R',
            Residency::Failed => 'F',
        };
        self.registry.models().iter().map(|status| letter(status.residency)).collect()
    }

    fn loads(&self, name: &str) -> usize {
        self.loads.lock().expect("lock").get(name).copied().unwrap_or(0)
    }

    /// Uses `name` once and lets it go idle.
    fn touch(&self, name: &str) -> EngineHandle {
        let lease = self.registry.acquire(name, None).expect("acquired");
        lease.engine().clone()
    }
}

fn long_request(engine: &EngineHandle) -> GenerationRequest {
    let params = SamplingParams { ignore_eos: true, ..common::greedy(200) };
    common::request(common::chat(engine, "Count to a thousand."), params)
}

/// Polls `condition` for up to ten seconds.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn models_load_on_first_use_and_the_least_recently_used_idle_one_makes_room() {
    let fixture = fixture(2, KeepAlive::Forever, Duration::ZERO);
    assert_eq!(fixture.residency(), "----");
    let first_a = fixture.touch("a");
    fixture.touch("b");
    assert_eq!(fixture.residency(), "RR--");
    assert_eq!(fixture.registry.held_bytes(), 2 * UNIT);
    fixture.touch("a"); // a is now more recent than b
    fixture.touch("c");
    assert_eq!(fixture.residency(), "R-R-", "b was the least recently used");
    assert_eq!(fixture.registry.held_bytes(), 2 * UNIT);
    assert_eq!((fixture.loads("a"), fixture.loads("b"), fixture.loads("c")), (1, 1, 1));
    fixture.touch("b");
    assert_eq!(fixture.residency(), "-RR-", "then a was");
    assert_eq!(fixture.loads("b"), 2, "an unloaded model loads again");
    // The unloaded engine is really gone, not just hidden.
    let refused = first_a.submit(long_request(&first_a));
    assert!(matches!(refused, Err(EngineError::ShuttingDown)), "{refused:?}");
    fixture.registry.shutdown(Duration::ZERO);
}

#[test]
fn a_model_with_requests_running_is_never_unloaded() {
    let fixture = fixture(2, KeepAlive::Forever, Duration::ZERO);
    let engine_a = fixture.touch("a");
    fixture.touch("b");
    // b is used after a, but a has a request in flight and no lease: still busy.
    let stream = engine_a.submit(long_request(&engine_a)).expect("submitted");
    fixture.touch("c");
    assert_eq!(fixture.residency(), "R-R-", "b went, although a was less recently leased");

    // With every resident model busy, a new one cannot come in; the error names them.
    let lease_c = fixture.registry.acquire("c", None).expect("resident");
    match fixture.registry.acquire("b", None) {
        Err(EngineError::NoRoom { busy, held_bytes, .. }) => {
            assert_eq!(busy, ["a", "c"]);
            assert_eq!(held_bytes, 2 * UNIT);
        }
        other => panic!("expected NoRoom, got {other:?}"),
    }
    drop(lease_c);
    assert_eq!(common::finish(stream).tokens.len(), 200, "a's request ran to the end");
    // Activity counts until a request ends, not just the lease: a was active after c.
    fixture.touch("b");
    assert_eq!(fixture.residency(), "RR--");
    fixture.registry.shutdown(Duration::ZERO);
}

#[test]
fn requests_for_a_loading_model_wait_for_the_one_load() {
    let fixture = fixture(2, KeepAlive::Forever, Duration::from_millis(400));
    let registry = fixture.registry.clone();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let registry = registry.clone();
            thread::spawn(move || {
                let lease = registry.acquire("a", None).expect("loaded");
                lease.engine().model_name().to_owned()
            })
        })
        .collect();
    eventually("a is loading", || fixture.residency() == "L---");
    for waiter in waiters {
        assert_eq!(waiter.join().expect("waiter"), "a");
    }
    assert_eq!(fixture.loads("a"), 1, "one load served every waiting request");
    fixture.registry.shutdown(Duration::ZERO);
}

#[test]
fn idle_models_unload_after_their_keep_alive() {
    let fixture = fixture(3, KeepAlive::For(Duration::from_millis(300)), Duration::ZERO);
    fixture.registry.acquire("b", Some(KeepAlive::Forever)).map(drop).expect("b");
    // A request in flight holds a past its keep-alive.
    let lease = fixture.registry.acquire("a", None).expect("a");
    let stream = lease.engine().submit(long_request(lease.engine())).expect("submitted");
    drop(lease);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(fixture.residency(), "RR--", "a is busy, b kept forever");
    common::finish(stream);
    let idle_since = Instant::now();
    eventually("a's keep-alive ran out", || fixture.residency() == "-R--");
    assert!(idle_since.elapsed() >= Duration::from_millis(250), "unloaded too early");
    // Keep-alive zero: unloaded as soon as the last request ends.
    fixture.registry.acquire("c", Some(KeepAlive::For(Duration::ZERO))).map(drop).expect("c");
    eventually("c went at once", || fixture.residency() == "-R--");
    thread::sleep(Duration::from_millis(400));
    assert_eq!(fixture.residency(), "-R--", "b stays");
    fixture.registry.shutdown(Duration::ZERO);
}

#[test]
fn failed_loads_too_large_and_unknown_models_are_clear_errors() {
    let fixture = fixture(2, KeepAlive::Forever, Duration::ZERO);
    *fixture.failing.lock().expect("lock") = true;
    match fixture.registry.acquire("a", None) {
        Err(EngineError::LoadFailed { name, error }) => {
            let message = error.to_string();
            assert_eq!((name.as_str(), message.as_str()), ("a", "the file vanished"));
        }
        other => panic!("expected LoadFailed, got {other:?}"),
    }
    assert_eq!(fixture.residency(), "----");
    assert_eq!(fixture.registry.held_bytes(), 0, "a failed load holds nothing");
    *fixture.failing.lock().expect("lock") = false;
    fixture.touch("a");
    assert_eq!(fixture.loads("a"), 2, "the next request tries again");

    let too_large = fixture.registry.acquire("d", None).expect_err("larger than the budget");
    assert!(matches!(too_large, EngineError::ModelTooLarge { .. }), "{too_large:?}");
    assert!(too_large.to_string().contains("3072 MiB but the memory budget is 2048 MiB"));
    assert_eq!(fixture.residency(), "R---", "nothing was unloaded for a model that cannot fit");
    let unknown = fixture.registry.acquire("zz", None).expect_err("unknown");
    assert!(matches!(unknown, EngineError::UnknownModel { .. }), "{unknown:?}");
    fixture.registry.shutdown(Duration::ZERO);
}

#[test]
fn shutdown_unloads_everything_and_refuses_new_leases() {
    let fixture = fixture(2, KeepAlive::Forever, Duration::ZERO);
    let engine_a = fixture.touch("a");
    let engine_b = fixture.touch("b");
    fixture.registry.shutdown(Duration::ZERO);
    assert_eq!(fixture.residency(), "----");
    for engine in [engine_a, engine_b] {
        assert!(matches!(engine.submit(long_request(&engine)), Err(EngineError::ShuttingDown)));
    }
    let refused = fixture.registry.acquire("a", None);
    assert!(matches!(refused, Err(EngineError::ShuttingDown)), "{refused:?}");
}

#[test]
fn duplicate_names_are_refused() {
    let entry = ModelEntry::new("a", 1);
    let config = RegistryConfig {
        budget_bytes: 10,
        default_keep_alive: KeepAlive::Forever,
        check_interval: Duration::from_secs(1),
    };
    let loader = Box::new(|_: &ModelEntry| Err("never loaded".to_owned()));
    let refused = ModelRegistry::new(vec![entry.clone(), entry], config, loader);
    assert!(matches!(refused, Err(EngineError::InvalidConfig { .. })));
}

#[test]
fn a_failed_engine_is_unloaded_reported_and_loaded_afresh_by_the_next_request() {
    let fixture = fixture(2, KeepAlive::Forever, Duration::ZERO);
    let engine = fixture.touch("a");
    fixture.touch("b");
    engine.inject_panic_for_tests();
    // The keep-alive thread finds it, unloads it, and the model stays marked until reloaded.
    eventually("a failed and was unloaded", || {
        fixture.residency() == "FR--" && fixture.registry.held_bytes() == UNIT
    });
    let status = &fixture.registry.models()[0];
    assert!(status.failure.as_deref().is_some_and(|f| f.contains("injected fault")), "{status:?}");
    assert!(matches!(
        engine.submit(long_request(&engine)),
        Err(EngineError::EngineFailed { .. }) | Err(EngineError::ShuttingDown)
    ));
    // The next request loads it afresh, and it works.
    let lease = fixture.registry.acquire("a", None).expect("reloaded");
    assert_eq!(fixture.loads("a"), 2);
    let stream = lease.engine().submit(long_request(lease.engine())).expect("submitted");
    assert_eq!(common::finish(stream).tokens.len(), 200);
    drop(lease);
    assert_eq!(fixture.residency(), "RR--");
    assert_eq!(fixture.registry.models()[0].failure, None);

    // A request that comes before the keep-alive thread looks also gets a fresh engine.
    let lease = fixture.registry.acquire("b", None).expect("b");
    lease.engine().inject_panic_for_tests();
    eventually("b's engine failed", || lease.engine().failure().is_some());
    drop(lease);
    let lease = fixture.registry.acquire("b", None).expect("b reloaded");
    assert_eq!(lease.engine().failure(), None);
    assert_eq!(fixture.loads("b"), 2);
    drop(lease);
    fixture.registry.shutdown(Duration::ZERO);
}
