//! Store errors that pass: a lock another process holds, a full disk, an I/O error, a
//! read-only file. The daemon waits them out instead of ending ([`crate::notices::StoreWait`]).

use std::path::Path;
use std::time::Duration;

/// The store cannot be used for now, for a reason that passes (or that an operator fixes
/// without restarting us): the daemon waits it out — stops fetching, holds sending and its
/// timers, retries — instead of ending. Every other store error (a defect, a corrupt file, a
/// schema from a newer version) stays an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// SQLITE_BUSY or SQLITE_LOCKED after the busy timeout: another process holds the lock.
    Locked,
    /// SQLITE_FULL (or ENOSPC): the file system under the store is full.
    DiskFull,
    /// SQLITE_IOERR: the file could not be read or written.
    DiskError,
    /// SQLITE_READONLY (or EROFS): the file or its file system does not take writes.
    ReadOnly,
}

impl Unavailable {
    /// What `e` says about the store, if it is one of the passing conditions.
    pub fn of(e: &anyhow::Error) -> Option<Unavailable> {
        use rusqlite::ErrorCode as C;
        e.chain().find_map(|cause| {
            if let Some(code) = cause
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
            {
                return match code {
                    C::DatabaseBusy | C::DatabaseLocked => Some(Unavailable::Locked),
                    C::DiskFull => Some(Unavailable::DiskFull),
                    C::SystemIoFailure => Some(Unavailable::DiskError),
                    C::ReadOnly => Some(Unavailable::ReadOnly),
                    _ => None,
                };
            }
            // Creating the store's directory, at start.
            match cause.downcast_ref::<std::io::Error>()?.raw_os_error()? {
                28 => Some(Unavailable::DiskFull),  // ENOSPC
                30 => Some(Unavailable::ReadOnly),  // EROFS
                122 => Some(Unavailable::DiskFull), // EDQUOT
                _ => None,
            }
        })
    }

    /// The cause in a few words, for the log and the health board: "store locked by another
    /// process", "disk full under /var/lib/triaged" ...
    pub fn cause(self, path: &Path, busy_timeout: Duration) -> String {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match self {
            Unavailable::Locked => format!(
                "store locked by another process (no write went through within [store] busy_timeout, {}s)",
                busy_timeout.as_secs_f32()
            ),
            Unavailable::DiskFull => format!("disk full under {}", dir.display()),
            Unavailable::DiskError => format!("disk I/O error under {}", dir.display()),
            Unavailable::ReadOnly => format!(
                "store read-only ({}: check its permissions and the file system)",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> anyhow::Error {
        anyhow::Error::new(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
            .context("Recording UID 7 of INBOX")
    }

    #[test]
    fn passing_store_errors_are_told_apart_from_the_rest() {
        for (error, want) in [
            (sqlite(ffi::SQLITE_BUSY), Some(Unavailable::Locked)),
            (sqlite(ffi::SQLITE_LOCKED), Some(Unavailable::Locked)),
            (sqlite(ffi::SQLITE_FULL), Some(Unavailable::DiskFull)),
            (
                sqlite(ffi::SQLITE_IOERR_WRITE),
                Some(Unavailable::DiskError),
            ),
            (sqlite(ffi::SQLITE_READONLY), Some(Unavailable::ReadOnly)),
            (sqlite(ffi::SQLITE_CORRUPT), None),
            (sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE), None),
            (sqlite(ffi::SQLITE_CANTOPEN), None),
            (
                anyhow::Error::new(std::io::Error::from_raw_os_error(28)),
                Some(Unavailable::DiskFull),
            ),
            (
                anyhow::Error::new(std::io::Error::from_raw_os_error(30)),
                Some(Unavailable::ReadOnly),
            ),
            (
                anyhow::Error::new(std::io::Error::from_raw_os_error(13)),
                None,
            ),
            (anyhow::anyhow!("database is locked"), None),
        ] {
            assert_eq!(Unavailable::of(&error), want, "{error:#}");
        }
    }

    #[test]
    fn causes_name_the_lock_and_the_full_directory() {
        let path = Path::new("/var/lib/triaged/triaged.sqlite");
        let t = Duration::from_millis(1500);
        assert_eq!(
            Unavailable::Locked.cause(path, t),
            "store locked by another process (no write went through within [store] busy_timeout, 1.5s)"
        );
        assert_eq!(
            Unavailable::DiskFull.cause(path, t),
            "disk full under /var/lib/triaged"
        );
        assert_eq!(
            Unavailable::DiskError.cause(path, t),
            "disk I/O error under /var/lib/triaged"
        );
        assert!(
            Unavailable::ReadOnly
                .cause(path, t)
                .starts_with("store read-only (/var/lib/triaged/triaged.sqlite")
        );
        assert_eq!(
            Unavailable::DiskFull.cause(Path::new("triaged.sqlite"), t),
            "disk full under ."
        );
    }

    /// Another process's write lock (BEGIN EXCLUSIVE) past the busy timeout: the store opens
    /// (an up-to-date store is only read when opened), reads work, a write fails as `Locked`,
    /// and works again once the lock is gone.
    #[test]
    fn a_lock_held_elsewhere_makes_writes_unavailable_not_opening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        drop(crate::store::Store::open(&path).expect("create"));
        let other = rusqlite::Connection::open(&path).expect("other");
        other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        let store = crate::store::Store::open_with(&path, Duration::from_millis(50))
            .expect("opens beside the lock");
        assert_eq!(store.get_kv("nothing").expect("reads"), None);
        let e = store.probe(1).expect_err("the write waits for the lock");
        assert_eq!(Unavailable::of(&e), Some(Unavailable::Locked), "{e:#}");
        other.execute_batch("COMMIT").expect("unlock");
        store.probe(2).expect("writes again");
        assert_eq!(
            store.get_kv("store.probed_at").expect("read").as_deref(),
            Some("2")
        );
    }
}
