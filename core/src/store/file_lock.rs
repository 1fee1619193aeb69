//! The store's sidecar lock file (`<db path>-lock`): every open store holds a shared advisory
//! lock on it for its lifetime, and a rekey takes it exclusively, so a store is never
//! re-encrypted under a connection (of this process or another) still using the old key.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A shared lock on a store's sidecar file, held until dropped. Locks are per open file (flock
/// style): two stores on one file conflict even inside one process.
pub(crate) struct FileLock {
    file: File,
}

impl FileLock {
    /// Opens (creating when missing) the lock file beside `db` and takes a shared lock on it,
    /// waiting while a rekey holds it exclusively (a rekey is short).
    pub(crate) fn shared(db: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(db))?;
        file.lock_shared()?;
        Ok(Self { file })
    }

    /// Runs `f` holding the lock exclusively, or refuses with [`Error::StoreInUse`] without
    /// waiting when anyone else holds it. The shared lock is held again afterwards either way.
    pub(crate) fn exclusively<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        // Converting a held lock is unspecified across platforms: release it, then try.
        self.file.unlock()?;
        let taken = match self.file.try_lock() {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(Error::StoreInUse),
            Err(TryLockError::Error(error)) => Err(error.into()),
        };
        let out = taken.and_then(|()| f());
        let _ = self.file.unlock();
        self.file.lock_shared()?;
        out
    }
}

/// `<db path>-lock`, beside the database as SQLite's `-wal` and `-shm` are.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push("-lock");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use crate::{Alliance, Error, NewPlan, Role, StoreKey};

    fn titles(store: &Alliance) -> Vec<String> {
        let plans = store.list_plans().unwrap();
        plans.into_iter().map(|plan| plan.title).collect()
    }

    #[test]
    fn a_store_open_twice_is_not_rekeyed_until_the_other_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let (old, new) = (StoreKey::new([1; 32]), StoreKey::new([2; 32]));
        let first = Alliance::open_encrypted(&path, &old).unwrap();
        first.init("Dana", Role::Counselor, None).unwrap();
        let plan = NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: None,
            client_device: None,
        };
        first.create_plan(&plan).unwrap();
        // A second connection, as a relay or another process would hold.
        let second = Alliance::open_encrypted(&path, &old).unwrap();

        let refused = first.rekey(&new).unwrap_err();
        assert!(matches!(refused, Error::StoreInUse), "{refused}");
        assert!(refused.to_string().contains("close it"), "{refused}");
        // Nothing changed: both connections read on, and the file opens with the old key.
        assert_eq!(titles(&first), ["Plan"]);
        assert_eq!(titles(&second), ["Plan"]);
        let third = Alliance::open_encrypted(&path, &old).unwrap();
        assert_eq!(titles(&third), ["Plan"]);
        // Either side is refused while the other is open.
        drop(third);
        let refused = second.rekey(&new).unwrap_err();
        assert!(matches!(refused, Error::StoreInUse), "{refused}");

        drop(second);
        first.rekey(&new).unwrap();
        assert_eq!(titles(&first), ["Plan"]);
        drop(first);
        let error = Alliance::open_encrypted(&path, &old).err().unwrap();
        assert!(matches!(error, Error::WrongKey), "{error}");
        let reopened = Alliance::open_encrypted(&path, &new).unwrap();
        assert_eq!(titles(&reopened), ["Plan"]);
        assert!(reopened.integrity_check().unwrap().is_empty());
    }

    #[test]
    fn a_refused_rekey_keeps_the_store_locked_against_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let key = StoreKey::new([1; 32]);
        let first = Alliance::open_encrypted(&path, &key).unwrap();
        let second = Alliance::open_encrypted(&path, &key).unwrap();
        // After its refusal, `first` holds its shared lock again: `second` is refused too.
        assert!(matches!(first.rekey(&key), Err(Error::StoreInUse)));
        assert!(matches!(second.rekey(&key), Err(Error::StoreInUse)));
        drop(second);
        first.rekey(&StoreKey::new([3; 32])).unwrap();
        // After a rekey it holds the shared lock again: a newcomer cannot rekey under it.
        let newcomer = Alliance::open_encrypted(&path, &StoreKey::new([3; 32])).unwrap();
        assert!(matches!(newcomer.rekey(&key), Err(Error::StoreInUse)));
    }
}
