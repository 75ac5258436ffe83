//! Async locks by key, created on demand and dropped when unused. A key's
//! lock is a read-write lock: [`KeyedLocks::lock`] takes it alone,
//! [`KeyedLocks::read`] shares it with other readers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

type Slot = Arc<tokio::sync::RwLock<()>>;
type Slots = Arc<Mutex<HashMap<String, Slot>>>;

/// A set of named locks.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    slots: Slots,
}

enum Held {
    Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
}

/// Holds one key's lock; the key's slot goes away with its last user.
pub struct KeyedGuard {
    slots: Slots,
    key: String,
    held: Option<Held>,
}

impl KeyedLocks {
    fn slot(&self, key: &str) -> Slot {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    fn guard(&self, key: &str, held: Held) -> KeyedGuard {
        KeyedGuard {
            slots: self.slots.clone(),
            key: key.to_string(),
            held: Some(held),
        }
    }

    /// Waits for and takes the lock of `key`, alone.
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let held = Held::Alone(self.slot(key).write_owned().await);
        self.guard(key, held)
    }

    /// Waits for and takes the lock of `key`, shared with other readers.
    pub async fn read(&self, key: &str) -> KeyedGuard {
        let held = Held::Shared(self.slot(key).read_owned().await);
        self.guard(key, held)
    }
}

impl Drop for KeyedGuard {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
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

    #[tokio::test]
    async fn readers_share_a_key_and_a_writer_waits_for_them() {
        let locks = Arc::new(KeyedLocks::default());
        let r1 = locks.read("p").await;
        let _r2 = locks.read("p").await;
        let l2 = locks.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(async move {
            let _w = l2.lock("p").await;
            let _ = tx.send(());
        });
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "the writer waits for the readers");
        drop(r1);
        drop(_r2);
        writer.await.expect("writer");
        assert!(rx.try_recv().is_ok());
    }
}
