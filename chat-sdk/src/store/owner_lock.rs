//! One running client per outbox file: an advisory lock beside it.
//!
//! Two clients sharing one outbox would both send its queue and both write its positions.
//! The client that opens the file takes an exclusive lock on `<file>.lock` (an `flock`,
//! released by the kernel when the process dies, however it dies) and writes its process id
//! there, so a second one gets [`StoreError::InUse`] naming the holder. The lock file is
//! left in place when the client stops: removing it could race a client that is starting.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// The held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: File,
}

/// Where the lock of the outbox file `database` lives: beside the file itself, so every
/// path to it (a symbolic link, `./x.db` and `x.db`) shares one lock.
fn lock_path(database: &Path) -> PathBuf {
    let resolved = std::fs::canonicalize(database)
        .or_else(|_| {
            // Not created yet: resolve the directory it will be created in.
            let parent = database
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = database.file_name().unwrap_or(database.as_os_str());
            std::fs::canonicalize(parent).map(|dir| dir.join(name))
        })
        .unwrap_or_else(|_| database.to_owned());
    let mut name = resolved.into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl OwnerLock {
    /// Takes the lock of the outbox file `database`, or says who holds it.
    pub(crate) fn acquire(database: &Path) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(database))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                write!(file, "{}", std::process::id())?;
                Ok(Self { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder writes its id right after locking; a reader may find it empty.
                let _ = file.read_to_string(&mut holder);
                Err(StoreError::InUse {
                    path: database.to_owned(),
                    holder: holder.trim().parse().ok(),
                })
            }
            Err(TryLockError::Error(err)) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("outbox.db");
        let first = OwnerLock::acquire(&db).expect("first owner");
        match OwnerLock::acquire(&db) {
            Err(StoreError::InUse { path, holder }) => {
                assert_eq!(path, db);
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        OwnerLock::acquire(&db).expect("free again once the owner is gone");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_to_an_owned_file_shares_its_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("outbox.db");
        std::fs::write(&db, b"").expect("the file");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).expect("symlink");
        let _owner = OwnerLock::acquire(&db).expect("first owner");
        assert!(matches!(
            OwnerLock::acquire(&link),
            Err(StoreError::InUse { .. })
        ));
    }
}
