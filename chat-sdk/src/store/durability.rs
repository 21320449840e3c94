//! How a commit is made safe from a power cut: the write-ahead log held open and fsynced.

use std::path::PathBuf;

use crate::error::StoreError;

/// How a commit is made safe from a power cut.
#[derive(Debug)]
pub(super) enum Durability {
    /// Write-ahead logging: [`Store::sync`] fsyncs the log, outside the lock.
    Wal(WriteAheadLog),
    /// Another journal mode (the file system refused WAL): every commit waits for the
    /// disk itself (`synchronous=EXTRA`), so there is nothing left to sync.
    InCommit,
    /// An in-memory store: nothing survives a crash, nothing to sync.
    Memory,
}

/// The store's write-ahead log, held open from the start so an fsync reports every write
/// error since then, whichever handle's write it was.
#[derive(Debug)]
pub(super) struct WriteAheadLog {
    /// Where SQLite keeps it: the database's path as SQLite resolved it, plus `-wal`.
    path: PathBuf,
    file: std::fs::File,
}

impl WriteAheadLog {
    pub(super) fn open(conn: &rusqlite::Connection) -> Result<Self, StoreError> {
        let database = conn
            .path()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| std::io::Error::other("the store's database has no file name"))?;
        let path = PathBuf::from(format!("{database}-wal"));
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        // SQLite makes the log anew when the store opens: its directory entry must reach the
        // disk too, or a power cut could take away the file that later fsyncs made durable.
        file.sync_all()?;
        sync_directory_of(&path)?;
        Ok(Self { path, file })
    }

    /// Flushes the log to disk, and checks that it is still the file SQLite will recover
    /// from after a crash (a log removed or replaced under a running store is not).
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let held = self.file.metadata()?;
            let at_path = std::fs::metadata(&self.path)?;
            if (held.dev(), held.ino()) != (at_path.dev(), at_path.ino()) {
                return Err(StoreError::Io(std::io::Error::other(format!(
                    "{} was replaced while the store was open",
                    self.path.display()
                ))));
            }
        }
        Ok(())
    }
}

/// Flushes the directory holding `path`, so a file created there survives a power cut.
fn sync_directory_of(path: &std::path::Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let directory = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        match std::fs::File::open(directory)?.sync_all() {
            // Some file systems cannot sync a directory; their entries are as durable as
            // they make them.
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) => {}
            other => other?,
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
