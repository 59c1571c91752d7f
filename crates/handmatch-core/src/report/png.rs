//! Writing a rendered RGB buffer as PNG so that readers never see a half-written file.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, RgbImage};

use super::error::PlotError;
use crate::atomic_file::AtomicFile;

/// Encodes `rgb` (`width * height * 3` bytes) beside `path` and renames it into place.
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
    // The PNG encoder seeks, so it writes to memory; a chart is a few hundred KB.
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|source| PlotError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    AtomicFile::write(path, png.get_ref()).map_err(io_error)
}
