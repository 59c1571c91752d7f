//! Draws one photo: background, the hand's body as stacked inset outlines (dark rim, lighter
//! middle) and the view's own details: nails and knuckle wrinkles on the back, creases on the
//! palm, the ring on both.

use image::codecs::jpeg::JpegEncoder;
use image::{ImageError, RgbImage};
use rand::Rng;

use super::hand_model::{Blob, Digit, HandModel, Placement, Surface};
use super::nuisance::ImageNuisance;
use super::raster::{Canvas, Circle, Colour, Grade, Paint, Point};
use super::traits::{Crease, SubjectTraits, RING_FINGER};
use crate::hand_image::{Aspect, Side};

/// The body's brightness rises from a dark rim to a lighter middle, like a rounded surface lit
/// from the camera: brightness factors at the silhouette and `SHADING_DEPTH` hand units inside it.
const RIM_BRIGHTNESS: f32 = 0.7;
const MIDDLE_BRIGHTNESS: f32 = 1.06;
const SHADING_DEPTH: f32 = 0.14;
/// How quickly the rim gives way to the middle (hand units): smaller is a thinner rim.
const SHADING_SOFTNESS: f32 = 0.03;
const BACKGROUND_BANDS: usize = 16;
const NAIL_BED: Colour = Colour([250.0, 208.0, 204.0]);
const NAIL_TIP: Colour = Colour([246.0, 238.0, 230.0]);

pub(super) fn render_hand(
    traits: &SubjectTraits,
    aspect: Aspect,
    side: Side,
    nuisance: &ImageNuisance,
    width: u32,
    height: u32,
    rng: &mut impl Rng,
) -> RgbImage {
    let grade = Grade {
        brightness: nuisance.brightness,
        contrast: nuisance.contrast,
        white_balance: nuisance.white_balance,
    };
    let mut canvas = Canvas::new(
        width as usize,
        height as usize,
        grade,
        nuisance.noise_sigma,
        rng,
    );
    draw_background(&mut canvas, nuisance);

    let model = HandModel::build(traits, nuisance);
    // The model is a right hand seen from the back (thumb on the right once the fingers point
    // down). The palm of the same hand, and the back of the left hand, show it mirrored.
    let mirror = matches!(
        (aspect, side),
        (Aspect::Palmar, Side::Right) | (Aspect::Dorsal, Side::Left)
    );
    let placement = Placement::new(canvas.width(), canvas.height(), nuisance, mirror);
    let mut painter = Painter {
        canvas: &mut canvas,
        placement: &placement,
    };
    painter.body(&model, traits, aspect);
    match aspect {
        Aspect::Dorsal => painter.dorsal_details(&model, traits),
        Aspect::Palmar => painter.palmar_details(&model, traits),
    }
    painter.ring(&model, traits);

    canvas.into_image()
}

pub(super) fn encode_jpeg(photo: &RgbImage, quality: u8) -> Result<Vec<u8>, ImageError> {
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, quality).encode_image(photo)?;
    Ok(jpeg)
}

fn draw_background(canvas: &mut Canvas, nuisance: &ImageNuisance) {
    let height = canvas.height();
    for band in 0..BACKGROUND_BANDS {
        let rows = band * height / BACKGROUND_BANDS..(band + 1) * height / BACKGROUND_BANDS;
        let fall = nuisance.background_falloff * (band as f32 + 0.5) / BACKGROUND_BANDS as f32;
        let colour = Colour(nuisance.background.0.map(|c| c + fall));
        let paint = canvas.paint(colour);
        canvas.fill_rows(rows, &paint);
    }
}

struct Painter<'a> {
    canvas: &'a mut Canvas,
    placement: &'a Placement,
}

impl Painter<'_> {
    fn blob(&mut self, blob: &Blob, paint: &Paint) {
        let circles = self.placement.circles(blob);
        self.canvas.fill_circles(&circles, paint);
    }

    /// A line of round-capped segments through `points` (hand units).
    fn stroke(&mut self, points: &[Point], width: f32, paint: &Paint) {
        let radius = self.placement.length(width / 2.0);
        for pair in points.windows(2) {
            let ends = [pair[0], pair[1]].map(|p| Circle {
                centre: self.placement.point(p),
                radius,
            });
            self.canvas.fill_circles(&ends, paint);
        }
    }

    /// The body, one inset layer at a time across all parts, so that only the outer silhouette
    /// (and the gaps between touching fingers) get the dark rim.
    fn body(&mut self, model: &HandModel, traits: &SubjectTraits, aspect: Aspect) {
        let (hand, forearm) = match aspect {
            Aspect::Dorsal => (traits.skin, traits.skin),
            Aspect::Palmar => (traits.palm_skin, palmar_forearm(traits)),
        };
        let parts = model.parts();
        for (inset, brightness) in self.shading_layers() {
            let hand_paint = self.canvas.paint(hand.shade(brightness));
            let forearm_paint = self.canvas.paint(forearm.shade(brightness));
            for (blob, surface) in &parts {
                if let Some(inner) = blob.inset(inset * model.palm_width) {
                    let paint = match surface {
                        Surface::Hand => &hand_paint,
                        Surface::Forearm => &forearm_paint,
                    };
                    self.blob(&inner, paint);
                }
            }
        }
    }

    /// (inset in hand units, brightness factor) from the silhouette inwards, in equal brightness
    /// steps about one and a half pixels apart on average, whatever the photo's size.
    fn shading_layers(&self) -> Vec<(f32, f32)> {
        let depth_in_pixels = self.placement.length(SHADING_DEPTH);
        let count = (depth_in_pixels / 1.5).round().clamp(6.0, 24.0) as usize;
        let saturation = |depth: f32| depth / (depth + SHADING_SOFTNESS);
        let deepest = saturation(SHADING_DEPTH);
        (0..count)
            .map(|k| {
                let level = deepest * k as f32 / (count - 1) as f32;
                let inset = SHADING_SOFTNESS * level / (1.0 - level);
                let brightness =
                    RIM_BRIGHTNESS + (MIDDLE_BRIGHTNESS - RIM_BRIGHTNESS) * level / deepest;
                (inset, brightness)
            })
            .collect()
    }

    fn dorsal_details(&mut self, model: &HandModel, traits: &SubjectTraits) {
        let w = model.palm_width;
        let wrinkle = self.canvas.paint(traits.skin.shade(0.8));
        let faint = self.canvas.paint(traits.skin.shade(0.88));
        for (f, finger) in model.fingers.iter().enumerate() {
            let count = traits.knuckle_wrinkles[f];
            for k in 0..count {
                let t = 0.45 + (k as f32 - (count - 1) as f32 / 2.0) * 0.028;
                let line = arc_across(finger, t, 0.55, 0.25);
                self.stroke(&line, 0.011 * w, &wrinkle);
            }
            for t in [0.715, 0.74] {
                let line = arc_across(finger, t, 0.4, 0.2);
                self.stroke(&line, 0.009 * w, &faint);
            }
            self.nail(finger, traits, 0.62, 0.985);
        }
        let knuckle = arc_across(&model.thumb, 0.45, 0.45, 0.2);
        self.stroke(&knuckle, 0.011 * w, &wrinkle);
        self.nail(&model.thumb, traits, 0.6, 0.98);
    }

    /// A nail on the last phalanx, from `traits.nail_length` before `end` to `end` (fractions of
    /// the digit), `breadth` of the tip's width.
    fn nail(&mut self, digit: &Digit, traits: &SubjectTraits, breadth: f32, end: f32) {
        let radius = digit.tip_half_width * breadth;
        let round = radius / digit.length;
        let start = end - traits.nail_length;
        let capsule = |from: f32, to: f32, radius: f32| {
            Blob(vec![
                Circle {
                    centre: digit.at(from + round),
                    radius,
                },
                Circle {
                    centre: digit.at(to - round),
                    radius,
                },
            ])
        };
        let outline = self.canvas.paint(traits.skin.shade(0.72));
        self.blob(&capsule(start - 0.01, end, radius * 1.12), &outline);
        match traits.nail_polish {
            Some(polish) => {
                let paint = self.canvas.paint(polish);
                self.blob(&capsule(start, end, radius), &paint);
                let gloss = self.canvas.paint(polish.mix(Colour::WHITE, 0.45));
                let gloss_line = [digit.at(start + 0.04), digit.at(end - 0.06)]
                    .map(|p| p.add(digit.across().scale(radius * 0.35)));
                self.stroke(&gloss_line, radius * 0.35, &gloss);
            }
            None => {
                let tip = self.canvas.paint(NAIL_TIP.mix(traits.skin, 0.25));
                self.blob(&capsule(start, end, radius), &tip);
                let bed = self.canvas.paint(NAIL_BED.mix(traits.skin, 0.45));
                self.blob(&capsule(start, end - 0.045, radius * 0.96), &bed);
            }
        }
    }

    fn palmar_details(&mut self, model: &HandModel, traits: &SubjectTraits) {
        let w = model.palm_width;
        let crease = self.canvas.paint(traits.palm_skin.shade(0.72));
        let faint = self.canvas.paint(traits.palm_skin.shade(0.84));
        let lines = &traits.palm_lines;
        for main in [&lines.heart, &lines.head, &lines.life] {
            let curve = bezier(model, main);
            self.stroke(&curve, 0.014 * w, &crease);
        }
        for minor in &lines.minor {
            let curve = bezier(model, minor);
            self.stroke(&curve, 0.01 * w, &faint);
        }
        for finger in &model.fingers {
            for (t, paint) in [
                (0.01, &crease),
                (0.04, &faint),
                (0.43, &crease),
                (0.46, &faint),
            ] {
                let line = arc_across(finger, t, 0.8, 0.1);
                self.stroke(&line, 0.011 * w, paint);
            }
            let line = arc_across(finger, 0.71, 0.75, 0.1);
            self.stroke(&line, 0.01 * w, &crease);
        }
        for t in [0.5, 0.04] {
            let line = arc_across(&model.thumb, t, 0.75, 0.1);
            self.stroke(&line, 0.012 * w, &crease);
        }
        let wrist = self.canvas.paint(palmar_forearm(traits).shade(0.86));
        for y in [-1.03, -1.09] {
            let line = [(-0.3, y + 0.01), (0.0, y), (0.3, y + 0.01)].map(|p| model.on_palm(p));
            self.stroke(&line, 0.011 * w, &wrist);
        }
    }

    fn ring(&mut self, model: &HandModel, traits: &SubjectTraits) {
        let Some(ring) = &traits.ring else {
            return;
        };
        let finger = &model.fingers[RING_FINGER];
        let w = model.palm_width;
        // The band follows the finger's roundness, so it bows a little towards the tip.
        let band = arc_across(finger, ring.position, 0.9, 0.2);
        let edge = self.canvas.paint(ring.metal.shade(0.55));
        self.stroke(&band, ring.band_width + 0.016 * w, &edge);
        let metal = self.canvas.paint(ring.metal);
        self.stroke(&band, ring.band_width, &metal);
        let shine = self.canvas.paint(ring.metal.mix(Colour::WHITE, 0.55));
        let glint = arc_across(finger, ring.position, 0.5, 0.2);
        self.stroke(&glint[..3], ring.band_width * 0.3, &shine);
    }
}

/// A short arc across a digit at fraction `t` of its length, `reach` of its half width to each
/// side, bowed towards the tip by `bow` of its half width.
fn arc_across(digit: &Digit, t: f32, reach: f32, bow: f32) -> [Point; 5] {
    let half = digit.half_width(t) * reach;
    let centre = digit.at(t);
    let across = digit.across();
    [-1.0, -0.5, 0.0, 0.5, 1.0].map(|s: f32| {
        centre
            .add(across.scale(s * half))
            .add(digit.direction.scale(bow * half * (1.0 - s * s)))
    })
}

/// The inside of the forearm: between the back's tone and the palm's.
fn palmar_forearm(traits: &SubjectTraits) -> Colour {
    traits.skin.mix(traits.palm_skin, 0.75)
}

/// The cubic Bézier curve of a crease's control points, in hand units.
fn bezier(model: &HandModel, crease: &Crease) -> Vec<Point> {
    let [p0, p1, p2, p3] = crease.map(|p| model.on_palm(p));
    (0..=12)
        .map(|i| {
            let t = i as f32 / 12.0;
            let (a, b, c) = (p0.lerp(p1, t), p1.lerp(p2, t), p2.lerp(p3, t));
            let (d, e) = (a.lerp(b, t), b.lerp(c, t));
            d.lerp(e, t)
        })
        .collect()
}
