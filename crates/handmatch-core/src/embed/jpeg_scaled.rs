//! JPEG decoding at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg-turbo): the inverse
//! transform computes only the low frequencies of each block, so a 1600 x 1200 photo for a
//! 224 model costs a fraction of a full decode, and the scaled pixels are an antialiased
//! reduction, not a sampling.

use image::RgbImage;
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat};

/// The scales libjpeg-turbo reduces by, largest first.
const REDUCTIONS: [u32; 3] = [8, 4, 2];

/// The largest reduction that keeps the short side of `width` x `height` at
/// `min_short_side` or more; 1 when none does.
pub fn reduction_for(width: u32, height: u32, min_short_side: u32) -> u32 {
    let short = width.min(height);
    REDUCTIONS
        .into_iter()
        .find(|&r| short.div_ceil(r) >= min_short_side.max(1))
        .unwrap_or(1)
}

/// `Some(pixels)` at 1/`reduction` scale (each side rounded up, as libjpeg-turbo does);
/// `None` when libjpeg-turbo cannot convert this file's colour space to RGB (CMYK, YCCK),
/// for the caller's full decoder to handle. Errors are libjpeg-turbo's message.
pub fn decode_reduced(bytes: &[u8], reduction: u32) -> Result<Option<RgbImage>, String> {
    let mut decompressor = Decompressor::new().map_err(|e| e.to_string())?;
    let header = decompressor.read_header(bytes).map_err(|e| e.to_string())?;
    if matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
        return Ok(None);
    }
    let r = reduction as usize;
    let (width, height) = (header.width.div_ceil(r), header.height.div_ceil(r));
    let mut image = Image {
        pixels: vec![0u8; 3 * width * height],
        width,
        pitch: 3 * width,
        height,
        format: PixelFormat::RGB,
    };
    decompressor
        .decompress(bytes, image.as_deref_mut())
        .map_err(|e| e.to_string())?;
    let rgb = RgbImage::from_raw(width as u32, height as u32, image.pixels)
        .expect("the buffer holds width x height RGB pixels");
    Ok(Some(rgb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keeps_the_short_side_above_the_resize() {
        assert_eq!(reduction_for(1600, 1200, 256), 4);
        assert_eq!(reduction_for(1200, 1600, 256), 4);
        assert_eq!(reduction_for(4000, 3000, 256), 8);
        assert_eq!(reduction_for(600, 512, 256), 2);
        // 511 / 2 rounds up to 256: still enough; 509 / 2 does not.
        assert_eq!(reduction_for(511, 700, 256), 2);
        assert_eq!(reduction_for(509, 700, 256), 1);
        assert_eq!(reduction_for(240, 180, 256), 1);
        // 1023 / 4 rounds up to 256, which is still enough.
        assert_eq!(reduction_for(1023, 1400, 256), 4);
    }
}
