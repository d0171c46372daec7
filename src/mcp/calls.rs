//! The tool calls in progress in this API process, by agent and JSON-RPC request id, so that a
//! client's `notifications/cancelled` reaches the call it names. Over stateless HTTP the
//! notification arrives as a POST of its own, which the SDK accepts without handing on; the API
//! finds it ([`super::cancelled_request`]) and cancels the call here. (Over stdio the SDK
//! cancels the call itself.)
//!
//! Only the agent whose token sent the notification can cancel its calls. A notification that
//! reaches another API replica than its call finds nothing here; the call then runs to its end
//! (at most `wait_seconds`), as a call whose client went away does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// A call: the agent, and the request id as the client wrote it.
pub type CallKey = (String, String);

/// The calls in progress.
#[derive(Clone, Default)]
pub struct Calls {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    /// two sessions of one agent may use the same request id at once
    calls: HashMap<CallKey, Vec<(u64, CancellationToken)>>,
}

/// A registered call; dropping it forgets the call.
pub struct Registered {
    calls: Calls,
    key: CallKey,
    number: u64,
}

impl Calls {
    /// Registers a call whose `cancel` the call watches.
    pub fn register(&self, key: CallKey, cancel: &CancellationToken) -> Registered {
        let mut registry = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        registry.next += 1;
        let number = registry.next;
        registry
            .calls
            .entry(key.clone())
            .or_default()
            .push((number, cancel.clone()));
        Registered {
            calls: self.clone(),
            key,
            number,
        }
    }

    /// Cancels the calls of `key`; how many there were.
    pub fn cancel(&self, key: &CallKey) -> usize {
        let registry = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let tokens = registry
            .calls
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (_, token) in tokens {
            token.cancel();
        }
        tokens.len()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut registry = self
            .calls
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tokens) = registry.calls.get_mut(&self.key) {
            tokens.retain(|(number, _)| *number != self.number);
            if tokens.is_empty() {
                registry.calls.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_reaches_the_calls_of_its_agent_and_request_only() {
        let calls = Calls::default();
        let (first, second, other) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let key = ("agent-a".to_owned(), "7".to_owned());
        let _first = calls.register(key.clone(), &first);
        let second_call = calls.register(key.clone(), &second);
        let _other = calls.register(("agent-b".to_owned(), "7".to_owned()), &other);
        drop(second_call);
        assert_eq!(calls.cancel(&key), 1);
        assert!(first.is_cancelled());
        assert!(!second.is_cancelled());
        assert!(!other.is_cancelled());
        drop(_first);
        assert_eq!(calls.cancel(&key), 0);
    }
}
