//! Finding the hand and warping it to the canonical crop: coarse crop, the four right-angle
//! rotations through the landmark model (the most confident one wins), then a similarity
//! transform from the landmarks. Images without a hand are reported, never embedded.

use image::RgbImage;

use super::coarse::{background, coarse_views, warp, CoarseOptions};
use super::landmarks::{HandDetection, HandDetector, LANDMARKS};
use super::similarity::{CanonicalPose, Similarity};

/// What the artefact's metadata records about alignment; the server and the trainer build
/// their `HandAligner` from it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlignmentSpec {
    /// Below this hand presence (in the best rotation), an image has no hand.
    pub presence_threshold: f32,
    pub coarse: CoarseOptions,
    pub pose: CanonicalPose,
}

impl Default for AlignmentSpec {
    fn default() -> Self {
        Self {
            presence_threshold: 0.5,
            coarse: CoarseOptions::default(),
            pose: CanonicalPose::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignError {
    #[error("no hand found (hand presence {presence:.3} is below the threshold {threshold})")]
    NoHand { presence: f32, threshold: f32 },
}

/// One aligned image.
#[derive(Debug, Clone)]
pub struct AlignedHand {
    /// The canonical `side`-square crop.
    pub crop: RgbImage,
    /// Image → crop.
    pub transform: Similarity,
    pub presence: f32,
    /// The clockwise rotation of the coarse crop that found the hand.
    pub rotation: u32,
    /// The landmarks in image coordinates.
    pub points: [[f32; 2]; LANDMARKS],
}

#[derive(Debug, Clone, Copy)]
pub struct HandAligner {
    pub spec: AlignmentSpec,
    /// The canonical crop's side.
    pub side: u32,
}

impl HandAligner {
    pub fn new(spec: AlignmentSpec, side: u32) -> Self {
        Self { spec, side }
    }

    /// Aligns a batch: one detector call over all four rotations of every image. The outer
    /// error is the detector's; the inner one says that image has no hand.
    pub fn align<D: HandDetector>(
        &self,
        detector: &mut D,
        images: &[&RgbImage],
    ) -> Result<Vec<Result<AlignedHand, AlignError>>, D::Error> {
        let views: Vec<_> = images
            .iter()
            .map(|img| coarse_views(img, self.spec.coarse))
            .collect();
        let crops: Vec<&RgbImage> = views.iter().flatten().map(|v| &v.crop).collect();
        let detections = if crops.is_empty() {
            Vec::new()
        } else {
            detector.detect(&crops)?
        };
        Ok(images
            .iter()
            .zip(&views)
            .zip(detections.chunks(4))
            .map(|((img, views), found)| {
                let (best, det) = found
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.presence.total_cmp(&b.1.presence))
                    .expect("four views per image");
                self.finish(img, &views[best].from_image, views[best].rotation, det)
            })
            .collect())
    }

    fn finish(
        &self,
        image: &RgbImage,
        view_from_image: &Similarity,
        rotation: u32,
        det: &HandDetection,
    ) -> Result<AlignedHand, AlignError> {
        if det.presence.is_nan() || det.presence < self.spec.presence_threshold {
            return Err(AlignError::NoHand {
                presence: if det.presence.is_nan() {
                    0.0
                } else {
                    det.presence
                },
                threshold: self.spec.presence_threshold,
            });
        }
        let to_image = view_from_image.inverse();
        let points = det.points.map(|p| to_image.apply(p));
        let transform = Similarity::canonical(&points, self.side as f32, self.spec.pose);
        let crop = warp(image, &transform, self.side, background(image));
        Ok(AlignedHand {
            crop,
            transform,
            presence: det.presence,
            rotation,
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A stand-in model: reports a fixed upright hand, with presence only for the view
    /// rotated by `found_at` degrees.
    struct Fake {
        found_at: usize,
        calls: usize,
    }

    impl HandDetector for Fake {
        type Error = std::convert::Infallible;
        fn detect(&mut self, crops: &[&RgbImage]) -> Result<Vec<HandDetection>, Self::Error> {
            self.calls += 1;
            let mut points = [[112.0f32, 112.0]; LANDMARKS];
            points[0] = [112.0, 180.0];
            points[9] = [112.0, 100.0];
            points[5] = [90.0, 105.0];
            points[17] = [135.0, 110.0];
            Ok((0..crops.len())
                .map(|i| HandDetection {
                    presence: if i % 4 == self.found_at { 0.9 } else { 0.1 },
                    points,
                })
                .collect())
        }
    }

    fn photo() -> RgbImage {
        RgbImage::from_fn(200, 150, |x, y| {
            if (60..140).contains(&x) && (30..120).contains(&y) {
                Rgb([150, 100, 80])
            } else {
                Rgb([255, 255, 255])
            }
        })
    }

    #[test]
    fn the_most_confident_rotation_wins_and_landmarks_return_to_the_image() {
        let img = photo();
        let aligner = HandAligner::new(AlignmentSpec::default(), 224);
        let mut fake = Fake {
            found_at: 2,
            calls: 0,
        };
        let out = aligner.align(&mut fake, &[&img, &img]).unwrap();
        assert_eq!(fake.calls, 1, "one batch for all views of all images");
        let hand = out[0].as_ref().unwrap();
        assert_eq!(hand.rotation, 180);
        assert_eq!(hand.crop.dimensions(), (224, 224));
        // The wrist was found low in the 180°-rotated view, so it is high in the image.
        assert!(
            hand.points[0][1] < hand.points[9][1],
            "{:?}",
            hand.points[0]
        );
        // And the canonical transform puts it back below the middle knuckle.
        let w = hand.transform.apply(hand.points[0]);
        let m = hand.transform.apply(hand.points[9]);
        assert!(w[1] > m[1] && (w[0] - m[0]).abs() < 1e-3);
    }

    #[test]
    fn no_presence_anywhere_is_no_hand() {
        let img = photo();
        let aligner = HandAligner::new(AlignmentSpec::default(), 224);
        let mut fake = Fake {
            found_at: 7,
            calls: 0,
        };
        let out = aligner.align(&mut fake, &[&img]).unwrap();
        let err = out[0].as_ref().unwrap_err();
        assert!(err.to_string().starts_with("no hand found"), "{err}");
    }
}
