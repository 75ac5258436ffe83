//! [`Records`]: the records of one kind (images, pods, containers), in
//! memory and written through to the metadata store, with look-up by id,
//! unique id prefix or alias (an image's tags and digest references) in
//! one place.
//!
//! Writers are serialised by a lock of their own and commit (an fsync)
//! holding only that lock: readers take the map's lock for a copy and
//! never wait for another record's commit. A change of several records
//! ([`Records::transact`]) is one transaction: a crash leaves all or none.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Other names the record is found by ([`View::by_alias`]); none by
    /// default.
    fn aliases(&self) -> Vec<&str> {
        Vec::new()
    }
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

/// One change of a [`Records::transact`].
#[derive(Debug, Clone, PartialEq)]
pub enum Edit<R> {
    /// Insert or replace the record (by its id).
    Put(R),
    /// Remove the record of this id (absent is fine).
    Delete(String),
}

/// The records by id, and their aliases.
#[derive(Debug)]
struct Map<R> {
    by_id: BTreeMap<String, R>,
    /// (alias, id): an alias may name more than one record; the first id
    /// answers.
    aliases: BTreeSet<(String, String)>,
}

impl<R: Record> Map<R> {
    fn insert(&mut self, record: R) {
        let id = record.id().to_string();
        self.remove(&id);
        for alias in record.aliases() {
            self.aliases.insert((alias.to_string(), id.clone()));
        }
        self.by_id.insert(id, record);
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            for alias in old.aliases() {
                self.aliases.remove(&(alias.to_string(), id.to_string()));
            }
        }
    }
}

/// A consistent read-only view of the records, for look-ups that take
/// more than one step. Short-lived: it holds the readers' lock.
#[derive(Debug)]
pub struct View<'a, R> {
    map: &'a Map<R>,
}

impl<'a, R: Record> View<'a, R> {
    /// The record an id or unique prefix names.
    pub fn resolve(&self, id_or_prefix: &str) -> Lookup {
        if id_or_prefix.is_empty() {
            return Lookup::Empty;
        }
        let by_id = &self.map.by_id;
        if by_id.contains_key(id_or_prefix) {
            return Lookup::Found(id_or_prefix.to_string());
        }
        let mut found = by_id
            .range(id_or_prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(id_or_prefix))
            .map(|(k, _)| k);
        match (found.next(), found.next()) {
            (Some(id), None) => Lookup::Found(id.clone()),
            (Some(_), Some(_)) => Lookup::Ambiguous,
            (None, _) => Lookup::NotFound,
        }
    }

    /// Record `id`.
    pub fn get(&self, id: &str) -> Option<&'a R> {
        self.map.by_id.get(id)
    }

    /// The records `alias` names, by id.
    pub fn by_alias(&self, alias: &str) -> impl Iterator<Item = &'a R> + 'a {
        let map = self.map;
        let alias = alias.to_string();
        map.aliases
            .range((alias.clone(), String::new())..)
            .take_while(move |(a, _)| *a == alias)
            .filter_map(|(_, id)| map.by_id.get(id))
    }

    /// Every record, by id.
    pub fn values(&self) -> impl Iterator<Item = &'a R> + 'a {
        self.map.by_id.values()
    }
}

/// The records of kind `R`.
#[derive(Debug)]
pub struct Records<R> {
    store: Arc<MetaStore>,
    map: RwLock<Map<R>>,
    writer: Mutex<()>,
}

impl<R: Record> Records<R> {
    /// Loads every record of `R`'s table.
    pub fn load(store: Arc<MetaStore>) -> Result<Records<R>, Error> {
        let mut map = Map {
            by_id: BTreeMap::new(),
            aliases: BTreeSet::new(),
        };
        for (_, r) in store.load_all::<R>(R::TABLE)? {
            map.insert(r);
        }
        Ok(Records {
            store,
            map: RwLock::new(map),
            writer: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map<R>> {
        // A record changes only after its commit: a poisoned map is
        // still consistent.
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, Map<R>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store the records are written to (for tests reading it back).
    #[cfg(test)]
    pub(crate) fn store(&self) -> &Arc<MetaStore> {
        &self.store
    }

    /// Held by whoever writes records; exposed to tests of the readers.
    pub(crate) fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `look` on a consistent view of the records (no I/O in it:
    /// writers wait for it to put what they committed).
    pub fn with<T>(&self, look: impl FnOnce(&View<'_, R>) -> T) -> T {
        let map = self.read();
        look(&View { map: &map })
    }

    /// The record an id or unique prefix names.
    pub fn resolve(&self, id_or_prefix: &str) -> Lookup {
        self.with(|v| v.resolve(id_or_prefix))
    }

    /// A copy of record `id`.
    pub fn get(&self, id: &str) -> Option<R> {
        self.read().by_id.get(id).cloned()
    }

    /// `f` of each record `keep` lets through, read in place (no record
    /// is copied; the map's read lock is held meanwhile).
    pub fn map_filtered<T>(&self, keep: impl Fn(&R) -> bool, f: impl FnMut(&R) -> T) -> Vec<T> {
        self.read()
            .by_id
            .values()
            .filter(|r| keep(r))
            .map(f)
            .collect()
    }

    /// Copies of the records `keep` lets through, by id.
    pub fn filtered(&self, keep: impl Fn(&R) -> bool) -> Vec<R> {
        self.read()
            .by_id
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// Writes `record` through, then keeps it.
    pub fn put(&self, record: R) -> Result<(), Error> {
        let _writer = self.writer();
        let change = self.store.encode(record.id(), &record)?;
        self.store.apply(R::TABLE, vec![change])?;
        self.write_map().insert(record);
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
        self.write_map().insert(record.clone());
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

    /// Changes several records at once: `plan` looks at the records as
    /// they are (no other writer runs meanwhile) and says what to change
    /// and what to answer; the changes are committed in one transaction,
    /// then readers see them all together. Nothing is written when `plan`
    /// fails or changes nothing.
    pub fn transact<T, E: From<Error>>(
        &self,
        plan: impl FnOnce(&View<'_, R>) -> Result<(Vec<Edit<R>>, T), E>,
    ) -> Result<T, E> {
        let _writer = self.writer();
        // Planned on a view that is dropped before the commit: readers
        // never wait for the disk.
        let (edits, answer) = self.with(plan)?;
        if edits.is_empty() {
            return Ok(answer);
        }
        let changes = edits
            .iter()
            .map(|e| match e {
                Edit::Put(r) => self.store.encode(r.id(), r),
                Edit::Delete(id) => Ok(Change::Delete(id.clone())),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.store.apply(R::TABLE, changes)?;
        let mut map = self.write_map();
        for edit in edits {
            match edit {
                Edit::Put(r) => map.insert(r),
                Edit::Delete(id) => map.remove(&id),
            }
        }
        Ok(answer)
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

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Named {
        id: String,
        names: Vec<String>,
    }

    impl Record for Named {
        const TABLE: Table = Table::Images;
        fn id(&self) -> &str {
            &self.id
        }
        fn aliases(&self) -> Vec<&str> {
            self.names.iter().map(String::as_str).collect()
        }
    }

    fn named(id: &str, names: &[&str]) -> Named {
        Named {
            id: id.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn ids_of(records: &Records<Named>, alias: &str) -> Vec<String> {
        records.with(|v| v.by_alias(alias).map(|r| r.id.clone()).collect())
    }

    #[test]
    fn aliases_follow_every_change_and_are_rebuilt_on_load() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
        let records = Records::<Named>::load(store.clone()).expect("load");
        records.put(named("a", &["x", "y"])).expect("put");
        records.put(named("b", &["y"])).expect("put");
        assert_eq!(ids_of(&records, "x"), ["a"]);
        assert_eq!(ids_of(&records, "y"), ["a", "b"]);
        // Not a prefix match: "x" is not found by "" or "xx".
        assert!(ids_of(&records, "xx").is_empty());
        records
            .update("a", |r| {
                r.names = vec!["z".into()];
                true
            })
            .expect("update");
        assert!(ids_of(&records, "x").is_empty());
        assert_eq!(ids_of(&records, "y"), ["b"]);
        assert_eq!(ids_of(&records, "z"), ["a"]);
        records.delete("b").expect("delete");
        assert!(ids_of(&records, "y").is_empty());
        drop(records);
        let again = Records::<Named>::load(store).expect("reload");
        assert_eq!(ids_of(&again, "z"), ["a"]);
        assert!(ids_of(&again, "y").is_empty());
    }

    #[test]
    fn a_transaction_commits_all_its_edits_or_none() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
        let records = Records::<Named>::load(store.clone()).expect("load");
        records.put(named("a", &["x"])).expect("put");
        // The plan sees the records as they are.
        let moved: String = records
            .transact(|v| {
                let from = v.by_alias("x").next().expect("x").id.clone();
                let edits = vec![Edit::Delete(from.clone()), Edit::Put(named("b", &["x"]))];
                Ok::<_, Error>((edits, from))
            })
            .expect("transact");
        assert_eq!(moved, "a");
        assert_eq!(ids_of(&records, "x"), ["b"]);
        assert_eq!(records.get("a"), None);
        // A failing plan changes nothing.
        let failed = records.transact(|_| {
            Err::<(Vec<Edit<Named>>, ()), _>(Error::Record {
                path: "m".into(),
                key: "k".into(),
                source: serde_json::from_str::<u8>("x").expect_err("bad json"),
            })
        });
        assert!(failed.is_err());
        // Nothing to change: nothing written, the answer still given.
        let n = records
            .transact(|v| Ok::<_, Error>((Vec::new(), v.values().count())))
            .expect("no-op");
        assert_eq!(n, 1);
        drop(records);
        let again = Records::<Named>::load(store).expect("reload");
        assert_eq!(again.filtered(|_| true), vec![named("b", &["x"])]);
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
