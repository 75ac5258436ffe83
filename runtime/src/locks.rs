//! Async locks by key, created on demand and dropped when unused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Slot = Arc<tokio::sync::Mutex<()>>;

/// A set of named locks.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

/// Holds one key's lock; the key's slot goes away with its last user.
pub struct KeyedGuard {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits for and takes the lock of `key`.
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let slot = match self.slots.lock() {
            Ok(mut slots) => slots.entry(key.to_string()).or_default().clone(),
            Err(poisoned) => poisoned
                .into_inner()
                .entry(key.to_string())
                .or_default()
                .clone(),
        };
        let guard = slot.lock_owned().await;
        KeyedGuard {
            slots: self.slots.clone(),
            key: key.to_string(),
            guard: Some(guard),
        }
    }
}

impl Drop for KeyedGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Only the map holds the slot: nobody waits on it any more.
        if slots
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_serialises_other_keys_do_not() {
        let locks = Arc::new(KeyedLocks::default());
        let a = locks.lock("a").await;
        let _b = locks.lock("b").await;
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move {
            let _a = l2.lock("a").await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.expect("waiter");
        assert_eq!(
            locks.slots.lock().expect("map").len(),
            1,
            "unused slot dropped"
        );
    }
}
