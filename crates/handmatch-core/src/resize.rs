//! The one resize filter of the project: the evaluation transform, hand alignment and the
//! report's thumbnails all shrink images the same way, so training and serving see the
//! same pixels.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// Antialiased bilinear resize (PIL's and torchvision's filter), SIMD-accelerated.
pub fn resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    let (w, h) = (image.width() as f64, image.height() as f64);
    resize_region(image, [0.0, 0.0, w, h], width, height)
}

/// The region `[left, top, width, height]` of `image` (source pixels, fractional allowed)
/// resized to `width` x `height`: the same pixels as resizing the whole image and cropping,
/// at the cost of the region alone.
pub fn resize_region(image: &RgbImage, region: [f64; 4], width: u32, height: u32) -> RgbImage {
    let [left, top, w, h] = region;
    let src = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .expect("an RgbImage is a valid U8x3 buffer");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                .crop(left, top, w, h),
        )
        .expect("same pixel type on both sides");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer matches its size")
}
