//! The executable on disk: always launchable, and always replaced through a new inode.
//!
//! macOS caches code-signing state per vnode and kills a re-launched binary whose signed file was modified in
//! place, so the file is never written where it stands: a copy is made beside it, changed, and renamed over it.
//! A failure at any step leaves the old file exactly as it was (the rename is the only step that changes what the
//! path names, and it is atomic), and removes the copy.
//!
//! The copy is `std::fs::copy`, which clones the file where the file system can (`clonefile` on APFS, a reflink on
//! Btrfs or XFS) and otherwise copies inside the kernel, so an update's cost does not grow with the file on a Mac.
//! Nothing is synced to the disk, as ld64 and lld do not sync their output: a crash that loses the last write
//! costs a full link at the next build (the saved link state's digest no longer matches the file), never a wrong
//! program.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One write into the new file contents.
#[derive(Debug, Clone, Copy)]
pub struct FileWrite<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// Replaces the file at `path` with `bytes` (mode 0755) through a new inode.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_new_inode(path, bytes, 0o755)
}

/// Replaces the file at `path` with `bytes` and the given mode through a new inode: readers see the old file
/// or the new one, never a part of either. Also used for hcr's own state files.
pub(crate) fn write_new_inode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let prefix = temp_prefix(path);
    let mut temp = tempfile::Builder::new().prefix(&prefix).suffix(".tmp").tempfile_in(dir_of(path))?;
    temp.write_all(bytes)?;
    fs::set_permissions(temp.path(), Permissions::from_mode(mode))?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Replaces the file at `path` with a copy of itself changed by `writes` and cut or extended to `len` bytes,
/// through a new inode. Only the written ranges are produced by the caller; the rest is cloned or copied by the
/// kernel.
pub fn patch(path: &Path, len: u64, writes: &[FileWrite<'_>]) -> io::Result<()> {
    // A fresh name that does not exist yet, so that the copy can be a clone (`clonefile` refuses an existing
    // target); the returned guard removes the copy unless it is persisted.
    let prefix = temp_prefix(path);
    let copy = |name: &Path| {
        // A copy that failed half way (a full disk) is not guarded yet: remove it here.
        fs::copy(path, name).inspect_err(|_| {
            let _ = fs::remove_file(name);
        })
    };
    let temp = tempfile::Builder::new().prefix(&prefix).suffix(".tmp").make_in(dir_of(path), copy)?;
    let mut file = OpenOptions::new().write(true).open(temp.path())?;
    file.set_len(len)?;
    for write in writes {
        file.seek(SeekFrom::Start(write.offset))?;
        file.write_all(write.bytes)?;
    }
    drop(file);
    fs::set_permissions(temp.path(), Permissions::from_mode(0o755))?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Temporary files beside `path` are named `.NAME.XXXXXX.tmp`.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(".{name}.")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn replace_writes_a_new_executable_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        fs::write(&path, b"old contents").unwrap();
        let old_inode = fs::metadata(&path).unwrap().ino();

        replace(&path, b"new").unwrap();

        let meta = fs::metadata(&path).unwrap();
        assert_ne!(meta.ino(), old_inode);
        assert_eq!(meta.mode() & 0o777, 0o755);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
    }

    #[test]
    fn patch_copies_applies_writes_and_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        fs::write(&path, b"0123456789").unwrap();
        let old_inode = fs::metadata(&path).unwrap().ino();

        patch(&path, 12, &[FileWrite { offset: 2, bytes: b"ab" }, FileWrite { offset: 11, bytes: b"Z" }])
            .unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"01ab456789\0Z");
        assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode);

        patch(&path, 4, &[]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"01ab");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        fs::write(&path, b"keep me").unwrap();
        let old_inode = fs::metadata(&path).unwrap().ino();

        // A write past what a file may hold fails after the copy was made, before the rename.
        let err = patch(&path, 8, &[FileWrite { offset: u64::MAX - 1, bytes: b"xx" }]);

        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"keep me");
        assert_eq!(fs::metadata(&path).unwrap().ino(), old_inode);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file is removed");
    }
}
