//! [`Records`]: the records of one kind (pods, containers), in memory and
//! written through to the metadata store, with look-up by id or unique
//! prefix in one place.
//!
//! Writers are serialised by a lock of their own and commit (an fsync)
//! holding only that lock: readers take the map's lock for a copy and
//! never wait for another record's commit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Change, Error, MetaStore, Table};

/// A kind of record kept in [`Records`].
pub trait Record: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The table the records live in.
    const TABLE: Table;
    /// The record's id (its key).
    fn id(&self) -> &str;
}

/// What an id or prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// This one record (its full id).
    Found(String),
    /// Nothing.
    NotFound,
    /// More than one record starts with it.
    Ambiguous,
    /// The id is empty.
    Empty,
}

/// The records of kind `R`.
#[derive(Debug)]
pub struct Records<R> {
    store: Arc<MetaStore>,
    map: RwLock<BTreeMap<String, R>>,
    writer: Mutex<()>,
}

impl<R: Record> Records<R> {
    /// Loads every record of `R`'s table.
    pub fn load(store: Arc<MetaStore>) -> Result<Records<R>, Error> {
        let map = store
            .load_all::<R>(R::TABLE)?
            .into_iter()
            .map(|(_, r)| (r.id().to_string(), r))
            .collect();
        Ok(Records {
            store,
            map: RwLock::new(map),
            writer: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, R>> {
        // A record changes only after its commit: a poisoned map is
        // still consistent.
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, R>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held by whoever writes records; exposed to tests of the readers.
    pub(crate) fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record an id or unique prefix names.
    pub fn resolve(&self, id_or_prefix: &str) -> Lookup {
        if id_or_prefix.is_empty() {
            return Lookup::Empty;
        }
        let map = self.read();
        if map.contains_key(id_or_prefix) {
            return Lookup::Found(id_or_prefix.to_string());
        }
        let mut found = map
            .range(id_or_prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(id_or_prefix))
            .map(|(k, _)| k);
        match (found.next(), found.next()) {
            (Some(id), None) => Lookup::Found(id.clone()),
            (Some(_), Some(_)) => Lookup::Ambiguous,
            (None, _) => Lookup::NotFound,
        }
    }

    /// A copy of record `id`.
    pub fn get(&self, id: &str) -> Option<R> {
        self.read().get(id).cloned()
    }

    /// Copies of the records `keep` lets through, by id.
    pub fn filtered(&self, keep: impl Fn(&R) -> bool) -> Vec<R> {
        self.read().values().filter(|r| keep(r)).cloned().collect()
    }

    /// Writes `record` through, then keeps it.
    pub fn put(&self, record: R) -> Result<(), Error> {
        let _writer = self.writer();
        let change = self.store.encode(record.id(), &record)?;
        self.store.apply(R::TABLE, vec![change])?;
        self.write_map().insert(record.id().to_string(), record);
        Ok(())
    }

    /// Writes `record` to disk only: it is not among the records readers
    /// see until a [`Self::put`] (a pod being made is recorded so that a
    /// crash leaves it findable at the next start, not listed before it
    /// is ready).
    pub fn persist(&self, record: &R) -> Result<(), Error> {
        let _writer = self.writer();
        let change = self.store.encode(record.id(), record)?;
        self.store.apply(R::TABLE, vec![change])
    }

    /// Changes record `id` with `edit` (which says whether it changed
    /// anything) and writes it through; the record as saved, or `None`
    /// when there is no such record or nothing changed.
    pub fn update(&self, id: &str, edit: impl FnOnce(&mut R) -> bool) -> Result<Option<R>, Error> {
        let _writer = self.writer();
        // Only writers change records, and they hold `writer`: the copy
        // stays current until it is put back.
        let Some(mut record) = self.get(id) else {
            return Ok(None);
        };
        if !edit(&mut record) {
            return Ok(None);
        }
        let change = self.store.encode(id, &record)?;
        self.store.apply(R::TABLE, vec![change])?;
        self.write_map().insert(id.to_string(), record.clone());
        Ok(Some(record))
    }

    /// Deletes record `id` (absent is fine).
    pub fn delete(&self, id: &str) -> Result<(), Error> {
        let _writer = self.writer();
        self.store
            .apply(R::TABLE, vec![Change::Delete(id.to_string())])?;
        self.write_map().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing {
        id: String,
        n: u32,
    }

    impl Record for Thing {
        const TABLE: Table = Table::Pods;
        fn id(&self) -> &str {
            &self.id
        }
    }

    fn thing(id: &str, n: u32) -> Thing {
        Thing { id: id.into(), n }
    }

    #[test]
    fn records_are_written_through_and_found_by_prefix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
        let records = Records::<Thing>::load(store.clone()).expect("load");
        records.put(thing("abc1", 1)).expect("put");
        records.put(thing("abc2", 2)).expect("put");
        records.put(thing("def", 3)).expect("put");
        assert_eq!(records.resolve("d"), Lookup::Found("def".into()));
        assert_eq!(records.resolve("abc1"), Lookup::Found("abc1".into()));
        assert_eq!(records.resolve("abc"), Lookup::Ambiguous);
        assert_eq!(records.resolve("x"), Lookup::NotFound);
        assert_eq!(records.resolve(""), Lookup::Empty);
        let changed = records
            .update("abc1", |t| {
                t.n = 10;
                true
            })
            .expect("update");
        assert_eq!(changed, Some(thing("abc1", 10)));
        assert_eq!(records.update("abc1", |_| false).expect("no-op"), None);
        assert_eq!(records.update("nope", |_| true).expect("absent"), None);
        records.delete("def").expect("delete");
        records.delete("def").expect("delete again");
        drop(records);
        let again = Records::<Thing>::load(store).expect("reload");
        let mut all = again.filtered(|_| true);
        all.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(all, vec![thing("abc1", 10), thing("abc2", 2)]);
    }

    #[test]
    fn readers_do_not_wait_for_a_commit_in_progress() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
        let records = Records::<Thing>::load(store).expect("load");
        records.put(thing("a", 1)).expect("put");
        let writing = records.writer();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = tx.send((
                    records.resolve("a"),
                    records.get("a"),
                    records.filtered(|_| true).len(),
                ));
            });
            let read = rx.recv_timeout(std::time::Duration::from_secs(30));
            drop(writing);
            let read = read.expect("readers answered during a commit");
            assert_eq!(read, (Lookup::Found("a".into()), Some(thing("a", 1)), 1));
        });
    }
}
