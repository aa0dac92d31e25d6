//! [`ResponseStore`]: the responses kept for `previous_response_id` and
//! `GET /v1/responses/{id}`, in memory only (gone when the server stops), bounded by count and by
//! bytes: past either bound the oldest are evicted. A continued conversation refers to a response
//! that may have been evicted since; it then gets a 404 and must send its history as `input`.
//! Each response keeps its whole conversation (what continuing it needs, whatever was evicted
//! before it), so a long chain costs more than its last turn: the byte bound counts that too.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use uma_tokenizer::ChatMessage;

/// Most responses kept.
pub(crate) const MAX_STORED_RESPONSES: usize = 1024;
/// Most bytes kept, all responses together (their conversations and bodies, as JSON).
pub(crate) const MAX_STORED_BYTES: usize = 64 << 20;

/// One kept response.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    /// The conversation up to and including this response's output, without `instructions`:
    /// what a request continuing it puts before its own input.
    pub(crate) history: Vec<ChatMessage>,
    /// The response object, as `GET /v1/responses/{id}` returns it.
    pub(crate) body: Value,
}

impl StoredResponse {
    /// Its size for the byte bound: its parts as JSON.
    fn bytes(&self) -> usize {
        let history = serde_json::to_string(&self.history).map_or(0, |json| json.len());
        history + self.body.to_string().len()
    }
}

/// The kept responses, oldest first.
#[derive(Debug)]
pub(crate) struct ResponseStore {
    max_responses: usize,
    max_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<String, (StoredResponse, usize)>,
    /// Ids in the order they were stored.
    order: VecDeque<String>,
    bytes: usize,
}

impl Default for ResponseStore {
    fn default() -> Self {
        ResponseStore::new(MAX_STORED_RESPONSES, MAX_STORED_BYTES)
    }
}

impl ResponseStore {
    pub(crate) fn new(max_responses: usize, max_bytes: usize) -> ResponseStore {
        ResponseStore { max_responses, max_bytes, inner: Mutex::new(Entries::default()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves the maps consistent (each change is one call).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `response` under `id`, evicting the oldest until both bounds hold; a response larger
    /// than the whole byte bound is not kept.
    pub(crate) fn insert(&self, id: String, response: StoredResponse) {
        let bytes = response.bytes();
        if bytes > self.max_bytes || self.max_responses == 0 {
            tracing::debug!(id, bytes, "response too large to keep");
            return;
        }
        let mut entries = self.entries();
        if let Some((_, old)) = entries.by_id.remove(&id) {
            entries.bytes -= old;
            entries.order.retain(|kept| kept != &id);
        }
        while entries.order.len() >= self.max_responses || entries.bytes + bytes > self.max_bytes {
            let Some(oldest) = entries.order.pop_front() else { break };
            if let Some((_, size)) = entries.by_id.remove(&oldest) {
                entries.bytes -= size;
            }
        }
        entries.bytes += bytes;
        entries.order.push_back(id.clone());
        entries.by_id.insert(id, (response, bytes));
    }

    /// The response kept under `id`.
    pub(crate) fn get(&self, id: &str) -> Option<StoredResponse> {
        self.entries().by_id.get(id).map(|(response, _)| response.clone())
    }

    /// Forgets `id`; whether it was kept.
    pub(crate) fn remove(&self, id: &str) -> bool {
        let mut entries = self.entries();
        let Some((_, bytes)) = entries.by_id.remove(id) else { return false };
        entries.bytes -= bytes;
        entries.order.retain(|kept| kept != id);
        true
    }

    #[cfg(test)]
    fn len_and_bytes(&self) -> (usize, usize) {
        let entries = self.entries();
        (entries.order.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(text: &str) -> StoredResponse {
        StoredResponse { history: vec![ChatMessage::user(text)], body: json!({"text": text}) }
    }

    #[test]
    fn the_oldest_go_first_past_the_count() {
        let store = ResponseStore::new(2, 1 << 20);
        for id in ["a", "b", "c"] {
            store.insert(id.into(), response(id));
        }
        assert!(store.get("a").is_none());
        assert_eq!(store.get("b").unwrap().body, json!({"text": "b"}));
        assert!(store.get("c").is_some());
        assert_eq!(store.len_and_bytes().0, 2);
        assert!(store.remove("b"));
        assert!(!store.remove("b"));
        assert_eq!(store.len_and_bytes(), (1, response("c").bytes()));
    }

    #[test]
    fn the_oldest_go_first_past_the_bytes_and_huge_ones_are_not_kept() {
        let one = response(&"x".repeat(100)).bytes();
        let store = ResponseStore::new(100, one * 2 + one / 2);
        for id in ["a", "b", "c"] {
            store.insert(id.into(), response(&id.repeat(100)));
        }
        assert!(store.get("a").is_none());
        assert!(store.get("b").is_some() && store.get("c").is_some());
        assert!(store.len_and_bytes().1 <= one * 2 + one / 2);
        store.insert("huge".into(), response(&"y".repeat(one * 3)));
        assert!(store.get("huge").is_none());
        assert!(store.get("c").is_some(), "a refused response evicts nothing");
        // Storing an id again replaces it.
        store.insert("c".into(), response(&"z".repeat(100)));
        assert_eq!(store.len_and_bytes().0, 2);
        assert_eq!(store.get("c").unwrap().history, vec![ChatMessage::user("z".repeat(100))]);
    }
}
