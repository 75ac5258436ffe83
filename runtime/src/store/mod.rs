//! Persistent metadata: one redb database, the single source of truth for
//! images (and, with later issues, pods and containers).
//!
//! Records are JSON values under string keys, one table per kind. Every
//! change is one redb transaction, so a crash leaves either the old or the
//! new state, never a mix.

mod records;

pub use records::{Edit, Lookup, Record, Records, View};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ErrorKind;

/// The kinds of record kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Image records, by image id.
    Images,
    /// Pod sandbox records, by pod id.
    Pods,
    /// Container records, by container id.
    Containers,
}

impl Table {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Images => TableDefinition::new("images"),
            Table::Pods => TableDefinition::new("pods"),
            Table::Containers => TableDefinition::new("containers"),
        }
    }
}

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("metadata store {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The database error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record does not decode (or encode).
    #[error("metadata store {path}: record {key:?}: {source}")]
    Record {
        /// The database file.
        path: PathBuf,
        /// The record's key.
        key: String,
        /// The codec error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The kind of this error: a full disk is ResourceExhausted (the
    /// caller may retry once space is back), anything else Internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Db { source, .. } => match &**source {
                redb::Error::Io(e) if crate::error::is_out_of_space(e) => {
                    ErrorKind::ResourceExhausted
                }
                _ => ErrorKind::Internal,
            },
            Error::Record { .. } => ErrorKind::Internal,
        }
    }
}

/// One change of a transaction.
#[derive(Debug)]
pub enum Change {
    /// Insert or replace `key` with the encoded value.
    Put(String, Vec<u8>),
    /// Remove `key` (absent is fine).
    Delete(String),
}

/// The metadata database.
///
/// After an I/O error (a full disk) redb refuses every later transaction
/// until the database is closed and opened again; the store does that
/// before its next transaction, so a write succeeds as soon as there is
/// room again, without a daemon restart.
#[derive(Debug)]
pub struct MetaStore {
    path: PathBuf,
    db: RwLock<Option<redb::Database>>,
    /// An I/O error was seen: reopen before the next transaction.
    broken: AtomicBool,
}

impl MetaStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<MetaStore, Error> {
        let db = redb::Database::create(path).map_err(|e| Error::Db {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        })?;
        Ok(MetaStore {
            path: path.to_path_buf(),
            db: RwLock::new(Some(db)),
            broken: AtomicBool::new(false),
        })
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> Error {
        let source: redb::Error = e.into();
        if matches!(source, redb::Error::Io(_) | redb::Error::PreviousIo) {
            self.broken.store(true, Ordering::SeqCst);
        }
        Error::Db {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }

    /// The database, opened again first if an I/O error broke it.
    fn database(&self) -> Result<RwLockReadGuard<'_, Option<redb::Database>>, Error> {
        if self.broken.load(Ordering::SeqCst) {
            let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
            if self.broken.load(Ordering::SeqCst) {
                // redb holds a lock on the file: the old handle goes first.
                drop(db.take());
                let reopened = redb::Database::create(&self.path).map_err(|e| self.db_err(e))?;
                *db = Some(reopened);
                self.broken.store(false, Ordering::SeqCst);
                tracing::info!(path = %self.path.display(), "metadata store reopened after an I/O error");
            }
        }
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if db.is_none() {
            // A reopen failed: the next call tries again.
            self.broken.store(true, Ordering::SeqCst);
            return Err(self.db_err(redb::Error::PreviousIo));
        }
        Ok(db)
    }

    /// Encodes a record for a [`Change::Put`].
    pub fn encode<T: Serialize>(&self, key: &str, value: &T) -> Result<Change, Error> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Record {
            path: self.path.clone(),
            key: key.to_string(),
            source,
        })?;
        Ok(Change::Put(key.to_string(), bytes))
    }

    /// Applies every change to `table` in one transaction. The commit
    /// (an fsync) blocks: on a multi-threaded tokio runtime the worker
    /// hands its other tasks on first, so no caller waits behind a disk.
    pub fn apply(&self, table: Table, changes: Vec<Change>) -> Result<(), Error> {
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(|| self.commit(table, changes))
        } else {
            self.commit(table, changes)
        }
    }

    fn commit(&self, table: Table, changes: Vec<Change>) -> Result<(), Error> {
        let db = self.database()?;
        let Some(db) = db.as_ref() else {
            return Err(self.db_err(redb::Error::PreviousIo));
        };
        let txn = db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut t = txn
                .open_table(table.definition())
                .map_err(|e| self.db_err(e))?;
            for change in &changes {
                match change {
                    Change::Put(key, value) => {
                        t.insert(key.as_str(), value.as_slice())
                            .map_err(|e| self.db_err(e))?;
                    }
                    Change::Delete(key) => {
                        t.remove(key.as_str()).map_err(|e| self.db_err(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// Every record of `table`, decoded.
    pub fn load_all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, Error> {
        let db = self.database()?;
        let Some(db) = db.as_ref() else {
            return Err(self.db_err(redb::Error::PreviousIo));
        };
        let txn = db.begin_read().map_err(|e| self.db_err(e))?;
        let t = match txn.open_table(table.definition()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.db_err(e)),
        };
        let mut out = Vec::new();
        for entry in t.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = entry.map_err(|e| self.db_err(e))?;
            let key = k.value().to_string();
            let value = serde_json::from_slice(v.value()).map_err(|source| Error::Record {
                path: self.path.clone(),
                key: key.clone(),
                source,
            })?;
            out.push((key, value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_reopen_and_apply_atomically() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("meta.redb");
        {
            let store = MetaStore::open(&path).expect("open");
            assert!(store
                .load_all::<u32>(Table::Images)
                .expect("empty")
                .is_empty());
            let a = store.encode("a", &1u32).expect("encode");
            let b = store.encode("b", &2u32).expect("encode");
            store.apply(Table::Images, vec![a, b]).expect("apply");
            store
                .apply(
                    Table::Images,
                    vec![Change::Delete("a".into()), Change::Delete("zz".into())],
                )
                .expect("delete");
        }
        let store = MetaStore::open(&path).expect("reopen");
        let all: Vec<(String, u32)> = store.load_all(Table::Images).expect("load");
        assert_eq!(all, vec![("b".to_string(), 2)]);
    }

    #[test]
    fn undecodable_record_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::open(&tmp.path().join("m.redb")).expect("open");
        store
            .apply(
                Table::Images,
                vec![Change::Put("k".into(), b"not json".to_vec())],
            )
            .expect("apply");
        let err = store
            .load_all::<u32>(Table::Images)
            .expect_err("bad record");
        assert!(err.to_string().contains("\"k\""), "{err}");
    }
}
