//! The receiving end of one request: its events, and cancellation when it is dropped.

use std::sync::mpsc::Sender;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine_core::Command;
use crate::output::StreamEvent;
use crate::RequestId;

/// Events of one submitted request. Dropping it before the terminal event cancels the request:
/// the engine frees its KV blocks in its next step. That is how a client that disconnects
/// cancels.
#[derive(Debug)]
pub struct RequestStream {
    id: RequestId,
    events: UnboundedReceiver<StreamEvent>,
    commands: Sender<Command>,
    ended: bool,
}

impl RequestStream {
    pub(crate) fn new(
        id: RequestId,
        events: UnboundedReceiver<StreamEvent>,
        commands: Sender<Command>,
    ) -> Self {
        RequestStream { id, events, commands, ended: false }
    }

    /// The request's id in the engine.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next event; `None` after the terminal one.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        if self.ended {
            return None;
        }
        let event = self.events.recv().await;
        self.note(event.as_ref());
        event
    }

    /// [`RequestStream::next`] for synchronous callers (not inside an async runtime).
    pub fn blocking_next(&mut self) -> Option<StreamEvent> {
        if self.ended {
            return None;
        }
        let event = self.events.blocking_recv();
        self.note(event.as_ref());
        event
    }

    /// Asks the engine to stop the request; a `Finished` event with reason `cancelled` follows.
    pub fn cancel(&self) {
        // A closed channel means the engine is gone, and the request with it.
        let _ = self.commands.send(Command::Cancel(self.id));
    }

    fn note(&mut self, event: Option<&StreamEvent>) {
        if !matches!(event, Some(StreamEvent::Token(_))) {
            self.ended = true;
        }
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.ended {
            self.cancel();
        }
    }
}
