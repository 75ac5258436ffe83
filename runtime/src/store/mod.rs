//! Persistent metadata: one redb database, the single source of truth for
//! images (and, with later issues, pods and containers).
//!
//! Records are JSON values under string keys, one table per kind. Every
//! change is one redb transaction, so a crash leaves either the old or the
//! new state, never a mix.

use std::path::{Path, PathBuf};

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
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
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
#[derive(Debug)]
pub struct MetaStore {
    path: PathBuf,
    db: redb::Database,
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
            db,
        })
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> Error {
        Error::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
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

    /// Applies every change to `table` in one transaction.
    pub fn apply(&self, table: Table, changes: Vec<Change>) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
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
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
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
