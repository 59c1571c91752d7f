//! Files that appear complete or not at all: written beside their destination, then
//! renamed over it on `commit`. Dropped without a commit, the temporary file is removed.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

pub struct AtomicFile {
    target: PathBuf,
    inner: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".handmatch-")
            .suffix(".partial")
            .tempfile_in(dir)?;
        Ok(Self {
            target: target.to_path_buf(),
            inner: BufWriter::with_capacity(1 << 20, tmp),
        })
    }

    pub fn commit(self) -> io::Result<()> {
        let tmp = self.inner.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }

    /// Writes `bytes` to `target` atomically.
    pub fn write(target: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = Self::create(target)?;
        f.write_all(bytes)?;
        f.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
