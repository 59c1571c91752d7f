//! Image bytes → RGB pixels, safely: the format is sniffed (JPEG, PNG, WebP), the pixel
//! count is checked from the header before any pixel is decoded (decompression bombs),
//! EXIF orientation is applied, and greyscale, 16-bit, alpha and CMYK inputs become RGB8.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// Width × height above which an image is refused before decoding.
    pub max_pixels: u64,
    /// Smallest accepted side, in pixels, after orientation.
    pub min_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
            min_side: 16,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("image is empty (0 bytes)")]
    Empty,
    #[error("not a JPEG, PNG or WebP image")]
    UnknownFormat,
    #[error("{format} images are not accepted (use JPEG, PNG or WebP)")]
    UnsupportedFormat { format: String },
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("image is {width}x{height}, smaller than the minimum side of {min} pixels")]
    TooSmall { width: u32, height: u32, min: u32 },
    #[error("image could not be decoded: {0}")]
    Corrupt(String),
}

pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) => {}
        Some(other) => {
            return Err(DecodeError::UnsupportedFormat {
                format: format!("{other:?}"),
            })
        }
        None => return Err(DecodeError::UnknownFormat),
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    if width.min(height) < limits.min_side {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min: limits.min_side,
        });
    }
    Ok(image.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Luma, Rgb};

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn refuses_empty_text_and_truncated_input_with_reasons() {
        let limits = DecodeLimits::default();
        assert_eq!(decode_rgb(b"", &limits), Err(DecodeError::Empty));
        assert_eq!(
            decode_rgb(b"hello, I am a text file", &limits),
            Err(DecodeError::UnknownFormat)
        );
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([10, 20, 30])));
        let mut jpeg = Vec::new();
        img.write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        jpeg.truncate(jpeg.len() / 3);
        assert!(matches!(
            decode_rgb(&jpeg, &limits),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn pixel_bomb_is_refused_from_the_header() {
        // A valid PNG header declaring 100000x100000, with no pixel data at all.
        let mut bytes = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
        let _ = encoder.write_image(&[0u8; 4], 2, 2, image::ExtendedColorType::L8);
        let ihdr = bytes.windows(4).position(|w| w == b"IHDR").unwrap();
        bytes[ihdr + 4..ihdr + 8].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[ihdr + 8..ihdr + 12].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[ihdr..ihdr + 17]);
        bytes[ihdr + 17..ihdr + 21].copy_from_slice(&crc.to_be_bytes());
        let err = decode_rgb(&bytes, &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooManyPixels { width: 100_000, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn greyscale_and_16_bit_become_rgb8_and_tiny_images_are_refused() {
        let limits = DecodeLimits::default();
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(32, 20, Luma([77])));
        let rgb = decode_rgb(&png(&grey), &limits).unwrap();
        assert_eq!(rgb.dimensions(), (32, 20));
        assert_eq!(rgb.get_pixel(3, 3), &Rgb([77, 77, 77]));
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            24,
            24,
            Rgb([65535u16, 0, 32768]),
        ));
        let rgb = decode_rgb(&png(&deep), &limits).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 0, 128]));
        let one = DynamicImage::ImageRgb8(RgbImage::new(1, 1));
        assert!(matches!(
            decode_rgb(&png(&one), &limits),
            Err(DecodeError::TooSmall { .. })
        ));
    }
}
