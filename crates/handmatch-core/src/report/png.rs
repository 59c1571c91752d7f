//! Writing a rendered RGB buffer as PNG so that readers never see a half-written file.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};

use super::error::PlotError;

/// Encodes `rgb` (`width * height * 3` bytes) next to `path` and renames it into place.
pub(crate) fn write_png_atomically(
    path: &Path,
    rgb: Vec<u8>,
    (width, height): (u32, u32),
) -> Result<(), PlotError> {
    let io_error = |source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let image = RgbImage::from_raw(width, height, rgb)
        .expect("the drawing buffer is allocated as width * height * 3 bytes");
    let temp = temp_path(path);
    let written = (|| {
        let file = File::create(&temp).map_err(io_error)?;
        let mut out = BufWriter::new(file);
        image
            .write_to(&mut out, ImageFormat::Png)
            .map_err(|source| PlotError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        let file = out.into_inner().map_err(|e| io_error(e.into_error()))?;
        file.sync_all().map_err(io_error)?;
        fs::rename(&temp, path).map_err(io_error)
    })();
    if written.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&temp);
    }
    written
}

/// A hidden sibling of `path`, so the rename stays on one file system; the process id keeps
/// concurrent writers of the same chart apart.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chart.png".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
