//! Image bytes → RGB pixels, safely: the format is sniffed (JPEG, PNG, WebP); the pixel
//! count, the longest side and the aspect ratio are checked from the header before any
//! pixel is decoded (decompression bombs, and strips whose resize would cost more than
//! the image); a file whose container ends early is refused rather than decoded with its
//! missing rows filled in; EXIF orientation is applied, and greyscale, 16-bit, alpha and
//! CMYK inputs become RGB8.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::jpeg_scaled;

#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// Width × height above which an image is refused before decoding.
    pub max_pixels: u64,
    /// Smallest accepted side, in pixels, after orientation.
    pub min_side: u32,
    /// Longest accepted side, in pixels.
    pub max_side: u32,
    /// Longest over shortest side above which an image is refused: a photo of a hand is at
    /// most about 2:1, and a thin strip makes a short-side resize huge.
    pub max_aspect_ratio: f64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
            min_side: 16,
            max_side: 16_384,
            max_aspect_ratio: 8.0,
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
    #[error("image is {width}x{height}, a side over the limit of {max} pixels")]
    TooLong { width: u32, height: u32, max: u32 },
    #[error(
        "image is {width}x{height}, an aspect ratio of {ratio:.1}:1, over the limit of {max}:1"
    )]
    AspectRatio {
        width: u32,
        height: u32,
        ratio: f64,
        max: f64,
    },
    #[error("truncated {format}: {missing}")]
    Truncated {
        format: &'static str,
        missing: &'static str,
    },
    #[error("image could not be decoded: {0}")]
    Corrupt(String),
}

/// Width and height from the header, or `None` if there is no header to read; nothing is
/// decoded.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    decode_rgb_scaled(bytes, limits, None)
}

/// How an artefact's images are decoded; recorded in its metadata so that the trainer, the
/// server and the evaluation all see the same pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DecodeMode {
    /// Every pixel of the file.
    #[default]
    Full,
    /// JPEGs at 1/2, 1/4 or 1/8 scale in the DCT domain, as long as the short side stays at
    /// or above the resize the model needs; other formats in full.
    DctScaled,
}

impl DecodeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::DctScaled => "dct-scaled",
        }
    }
}

impl std::str::FromStr for DecodeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Self::Full),
            "dct-scaled" => Ok(Self::DctScaled),
            other => Err(format!(
                "unknown decode mode `{other}` (full or dct-scaled)"
            )),
        }
    }
}

/// `decode_rgb`, except that with `min_short_side` a JPEG is decoded at the smallest DCT
/// scale whose short side is still at least that many pixels. Every check of `decode_rgb`
/// runs first, on the full-size header.
pub fn decode_rgb_scaled(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_short_side: Option<u32>,
) -> Result<RgbImage, DecodeError> {
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
    let format = reader.format().expect("checked above");
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_header(width, height, limits)?;
    check_complete(format, bytes)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let reduction = match (format, min_short_side) {
        (ImageFormat::Jpeg, Some(min)) => jpeg_scaled::reduction_for(width, height, min),
        _ => 1,
    };
    let reduced = if reduction > 1 {
        jpeg_scaled::decode_reduced(bytes, reduction).map_err(DecodeError::Corrupt)?
    } else {
        None
    };
    let mut image = match reduced {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => {
            DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Corrupt(e.to_string()))?
        }
    };
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

/// What the header says the image will cost, before a pixel is decoded.
fn check_header(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if width.max(height) > limits.max_side {
        return Err(DecodeError::TooLong {
            width,
            height,
            max: limits.max_side,
        });
    }
    let ratio = width.max(height) as f64 / width.min(height).max(1) as f64;
    if ratio > limits.max_aspect_ratio {
        return Err(DecodeError::AspectRatio {
            width,
            height,
            ratio,
            max: limits.max_aspect_ratio,
        });
    }
    Ok(())
}

/// The container must reach its end: decoders fill the rows of a cut-off file with grey
/// (JPEG) or stop early without complaint, and half a hand makes a poisoned template.
fn check_complete(format: ImageFormat, bytes: &[u8]) -> Result<(), DecodeError> {
    let truncated = |format, missing| Err(DecodeError::Truncated { format, missing });
    match format {
        ImageFormat::Jpeg => {
            // Entropy-coded data escapes 0xFF, so after the last start-of-scan the only
            // 0xFF 0xD9 is the end-of-image marker (an EXIF thumbnail's comes before it).
            let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
            match (last(0xDA), last(0xD9)) {
                (Some(sos), Some(eoi)) if eoi > sos => Ok(()),
                _ => truncated("JPEG", "no end-of-image marker after the image data"),
            }
        }
        ImageFormat::Png => {
            if bytes.windows(4).rev().any(|w| w == b"IEND") {
                Ok(())
            } else {
                truncated("PNG", "no IEND chunk")
            }
        }
        ImageFormat::WebP => {
            let declared = bytes
                .get(4..8)
                .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize);
            match declared {
                Some(size) if bytes.len() >= 8 + size => Ok(()),
                _ => truncated("WebP", "shorter than its RIFF header says"),
            }
        }
        _ => Ok(()),
    }
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
            Err(DecodeError::Corrupt(_) | DecodeError::Truncated { .. })
        ));
    }

    fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    /// A busy picture, so that half of its bytes is half of its rows.
    fn noise(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            let v = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) as u8;
            Rgb([v, v.wrapping_mul(3), v.wrapping_add(y as u8)])
        }))
    }

    #[test]
    fn files_cut_at_half_their_bytes_are_refused_as_truncated() {
        let limits = DecodeLimits::default();
        let img = noise(96, 80);
        for (format, name) in [
            (ImageFormat::Jpeg, "JPEG"),
            (ImageFormat::Png, "PNG"),
            (ImageFormat::WebP, "WebP"),
        ] {
            let whole = encoded(&img, format);
            assert!(decode_rgb(&whole, &limits).is_ok(), "{name} whole");
            let half = &whole[..whole.len() / 2];
            match decode_rgb(half, &limits) {
                Err(DecodeError::Truncated { format, .. }) => assert_eq!(format, name),
                other => panic!("{name} cut in half: {other:?}"),
            }
            let message = decode_rgb(half, &limits).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("truncated {name}")),
                "{message}"
            );
        }
    }

    /// A valid PNG header declaring `width` x `height`, with the pixels of a 2 x 2 image.
    fn png_declaring(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
        let _ = encoder.write_image(&[0u8; 4], 2, 2, image::ExtendedColorType::L8);
        let ihdr = bytes.windows(4).position(|w| w == b"IHDR").unwrap();
        bytes[ihdr + 4..ihdr + 8].copy_from_slice(&width.to_be_bytes());
        bytes[ihdr + 8..ihdr + 12].copy_from_slice(&height.to_be_bytes());
        let crc = crc32fast::hash(&bytes[ihdr..ihdr + 17]);
        bytes[ihdr + 17..ihdr + 21].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn strips_and_overlong_sides_are_refused_from_the_header() {
        let limits = DecodeLimits::default();
        let strip = decode_rgb(&png_declaring(2_500_000, 16), &limits).unwrap_err();
        assert!(
            matches!(
                strip,
                DecodeError::TooLong {
                    width: 2_500_000,
                    ..
                }
            ),
            "{strip:?}"
        );
        let wide = decode_rgb(&png_declaring(4_000, 16), &limits).unwrap_err();
        assert!(matches!(wide, DecodeError::AspectRatio { .. }), "{wide:?}");
        assert!(wide.to_string().contains("250.0:1"), "{wide}");
        let tall = decode_rgb(&png_declaring(16, 200), &limits).unwrap_err();
        assert!(matches!(tall, DecodeError::AspectRatio { .. }), "{tall:?}");
        let long = DecodeLimits {
            max_side: 1_000,
            ..limits
        };
        let err = decode_rgb(&png_declaring(1_200, 900), &long).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLong { max: 1_000, .. }),
            "{err:?}"
        );
        // 8:1 is still a photo.
        let ok = noise(128, 16);
        assert!(decode_rgb(&encoded(&ok, ImageFormat::Png), &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn pixel_bomb_is_refused_from_the_header() {
        // A valid PNG header declaring 100000x100000, with no pixel data at all.
        let bytes = png_declaring(100_000, 100_000);
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

    fn synthetic_photo(width: u32, height: u32) -> Vec<u8> {
        crate::dataset::synth::first_photo(width, height).unwrap()
    }

    #[test]
    fn small_jpegs_and_other_formats_decode_in_full_whatever_the_mode() {
        let limits = DecodeLimits::default();
        let jpeg = synthetic_photo(320, 240);
        assert_eq!(
            decode_rgb_scaled(&jpeg, &limits, Some(256)).unwrap(),
            decode_rgb(&jpeg, &limits).unwrap()
        );
        let img = noise(640, 480);
        let png = encoded(&img, ImageFormat::Png);
        assert_eq!(
            decode_rgb_scaled(&png, &limits, Some(64))
                .unwrap()
                .dimensions(),
            (640, 480)
        );
        // The header checks come first: a cut-off file is refused, not scaled.
        let big = synthetic_photo(1600, 1200);
        assert!(matches!(
            decode_rgb_scaled(&big[..big.len() / 2], &limits, Some(256)),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
