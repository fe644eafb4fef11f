//! Reading the files a configuration names (secrets, key sets, lock files, the configuration
//! itself): regular files only, since a FIFO or a device would block the reader or never end, and
//! no more than a limit, since one is read into memory whole (and again at every change check).

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// Limit for secrets (keys, tokens).
pub const MAX_SECRET_FILE: u64 = 64 * 1024;
/// Limit for the configuration and the files it names besides secrets (lock files, key sets,
/// CA bundles).
pub const MAX_CONFIG_FILE: u64 = 16 * 1024 * 1024;

/// The contents of `path`, a regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    // Checked before opening: opening a FIFO for reading waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if !file.metadata()?.is_file() || size > limit {
        return Err(too_large(limit));
    }
    let mut contents = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(contents)
}

/// Like [`read_limited`], as UTF-8 text.
pub fn read_limited_string(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("larger than the limit of {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_limited_string(&file, 64).unwrap(), "s3cret\n");
        let error = read_limited(&file, 3).unwrap_err();
        assert!(error.to_string().contains("limit of 3 bytes"), "{error}");
        let error = read_limited(dir.path(), 64).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        #[cfg(unix)]
        {
            let error = read_limited(Path::new("/dev/zero"), 64).unwrap_err();
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
        assert!(read_limited(&dir.path().join("missing"), 64).is_err());
    }
}
