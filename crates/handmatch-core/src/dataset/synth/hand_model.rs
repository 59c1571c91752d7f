//! The hand's shape in its own frame, before it is placed in the photo: a right hand seen from
//! the back, x towards the thumb, y towards the fingertips, origin at the middle knuckle, lengths
//! in hand units. Every part is the convex hull of a few circles, so shrinking the radii gives the
//! inset outlines that fake the hand's roundness.

use super::nuisance::ImageNuisance;
use super::raster::{Circle, Point};
use super::traits::{SubjectTraits, FINGER_COUNT};

/// The convex hull of some circles.
#[derive(Debug, Clone)]
pub(super) struct Blob(pub Vec<Circle>);

impl Blob {
    fn capsule(a: Point, radius_a: f32, b: Point, radius_b: f32) -> Blob {
        Blob(vec![
            Circle {
                centre: a,
                radius: radius_a,
            },
            Circle {
                centre: b,
                radius: radius_b,
            },
        ])
    }

    /// The blob shrunk by `depth`; `None` once nothing would be left.
    pub(super) fn inset(&self, depth: f32) -> Option<Blob> {
        if self.0.iter().all(|c| c.radius <= depth) {
            return None;
        }
        Some(Blob(
            self.0
                .iter()
                .map(|c| Circle {
                    centre: c.centre,
                    radius: (c.radius - depth).max(0.0),
                })
                .collect(),
        ))
    }
}

/// A straight, slightly tapering digit.
#[derive(Debug, Clone)]
pub(super) struct Digit {
    /// Where the digit leaves the palm (fraction 0).
    pub base: Point,
    /// Unit vector from base to tip.
    pub direction: Point,
    pub length: f32,
    pub base_half_width: f32,
    pub tip_half_width: f32,
    /// From the root (`root` fraction, below 0 when hidden in the palm) to the rounded tip.
    pub outline: Blob,
}

impl Digit {
    fn new(
        base: Point,
        direction: Point,
        length: f32,
        (base_half_width, tip_half_width): (f32, f32),
        root: f32,
    ) -> Digit {
        let mut digit = Digit {
            base,
            direction,
            length,
            base_half_width,
            tip_half_width,
            outline: Blob(Vec::new()),
        };
        let tip_centre = 1.0 - tip_half_width / length;
        digit.outline = Blob::capsule(
            digit.at(root),
            digit.half_width(root),
            digit.at(tip_centre),
            digit.half_width(tip_centre),
        );
        digit
    }

    /// The centre line at fraction `t` of the length.
    pub(super) fn at(&self, t: f32) -> Point {
        self.base.add(self.direction.scale(t * self.length))
    }

    pub(super) fn half_width(&self, t: f32) -> f32 {
        let t = t.clamp(0.0, 1.0);
        self.base_half_width + (self.tip_half_width - self.base_half_width) * t
    }

    /// Unit vector across the digit.
    pub(super) fn across(&self) -> Point {
        self.direction.perpendicular()
    }
}

/// What colour a body part takes in the palmar view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Surface {
    /// Palm and the inside of the digits.
    Hand,
    Forearm,
}

pub(super) struct HandModel {
    pub palm_width: f32,
    pub palm_length: f32,
    pub forearm: Blob,
    pub palm: Blob,
    pub thenar: Blob,
    /// The free part of the thumb, with the nail.
    pub thumb: Digit,
    /// The whole thumb from its root near the wrist, bent slightly at the free part.
    pub thumb_outline: Blob,
    /// Fills the webs between the fingers' roots.
    pub finger_webs: Blob,
    /// Index, middle, ring, little.
    pub fingers: [Digit; FINGER_COUNT],
}

impl HandModel {
    // Long on purpose: the palm, the thumb and the four fingers are placed in one pass in a
    // fixed order, and that order fixes the random draws that make output byte-identical.
    pub(super) fn build(traits: &SubjectTraits, nuisance: &ImageNuisance) -> HandModel {
        let w = traits.palm_width;
        let l = traits.palm_length;
        let circle = |x: f32, y: f32, radius: f32| Circle {
            centre: Point::new(x, y),
            radius,
        };
        // Widest across the knuckles, narrowing towards the wrist.
        let corner = 0.13 * w;
        let wrist_corner = 0.2 * w;
        let palm = Blob(vec![
            circle(0.5 * w - corner, -corner, corner),
            circle(-0.5 * w + corner, -0.08 * w - corner, corner),
            circle(-0.49 * w + 0.15 * w, -0.5 * l, 0.15 * w),
            circle(-0.36 * w + wrist_corner, -l + wrist_corner, wrist_corner),
            circle(0.36 * w - wrist_corner, -l + wrist_corner, wrist_corner),
        ]);
        let thenar = Blob(vec![
            circle(0.27 * w, -0.72 * l, 0.19 * w),
            circle(0.36 * w, -0.45 * l, 0.15 * w),
        ]);
        // Long enough to leave the photo through the top edge at any pose.
        let forearm = Blob::capsule(
            Point::new(0.0, -l + 0.1 * w),
            0.37 * w,
            Point::new(0.0, -l - 6.0 * w),
            0.5 * w,
        );

        // Closed fingers lean slightly towards the middle finger; spreading fans them out.
        const CLOSED_ANGLE: [f32; FINGER_COUNT] = [-0.03, 0.0, 0.025, 0.06];
        const SPREAD_ANGLE: [f32; FINGER_COUNT] = [0.2, 0.05, -0.12, -0.27];
        const BASE_Y: [f32; FINGER_COUNT] = [-0.02, 0.0, -0.035, -0.1];
        let gap = 0.006 * w;
        let mut x = 0.5 * w - 0.015 * w;
        let fingers = [0, 1, 2, 3].map(|f| {
            let finger = &traits.fingers[f];
            if f > 0 {
                x -= (traits.fingers[f - 1].width + finger.width) / 2.0 + gap;
            } else {
                x -= finger.width / 2.0;
            }
            let angle = CLOSED_ANGLE[f]
                + finger.tilt
                + nuisance.spread * SPREAD_ANGLE[f]
                + nuisance.finger_jitter[f];
            Digit::new(
                Point::new(x, BASE_Y[f] * w),
                Point::direction(angle),
                finger.length,
                (finger.width / 2.0, finger.width * 0.43),
                -0.18,
            )
        });

        let thumb_half_width = traits.thumb_width / 2.0;
        let thumb_angle =
            traits.thumb_angle + 0.25 * nuisance.spread + nuisance.finger_jitter[FINGER_COUNT];
        let root = Point::new(0.28 * w, -0.8 * l);
        let bend = root.add(Point::direction(thumb_angle).scale(0.45 * traits.thumb_length));
        let thumb = Digit::new(
            bend,
            Point::direction(thumb_angle - 0.18),
            0.55 * traits.thumb_length,
            (0.9 * thumb_half_width, 0.76 * thumb_half_width),
            0.0,
        );
        let mut thumb_outline = thumb.outline.clone();
        thumb_outline.0.push(Circle {
            centre: root,
            radius: thumb_half_width,
        });
        let finger_webs = Blob(
            fingers
                .iter()
                .flat_map(|f| {
                    [-0.12, 0.08].map(|t| Circle {
                        centre: f.at(t),
                        radius: 0.8 * f.half_width(t),
                    })
                })
                .collect(),
        );

        HandModel {
            palm_width: w,
            palm_length: l,
            forearm,
            palm,
            thenar,
            thumb,
            thumb_outline,
            finger_webs,
            fingers,
        }
    }

    /// Every body part in drawing order, with the surface it belongs to.
    pub(super) fn parts(&self) -> Vec<(&Blob, Surface)> {
        let mut parts = vec![
            (&self.forearm, Surface::Forearm),
            (&self.thenar, Surface::Hand),
            (&self.palm, Surface::Hand),
        ];
        parts.push((&self.thumb_outline, Surface::Hand));
        parts.push((&self.finger_webs, Surface::Hand));
        parts.extend(self.fingers.iter().map(|f| (&f.outline, Surface::Hand)));
        parts
    }

    /// A point given in palm coordinates (x in palm widths from the centre line, y in palm
    /// lengths, 0 at the knuckles and -1 at the wrist).
    pub(super) fn on_palm(&self, (x, y): (f32, f32)) -> Point {
        Point::new(x * self.palm_width, y * self.palm_length)
    }
}

/// Where the hand lands in the photo: a similarity transform from hand units to pixels, with a
/// mirror for the views whose thumb is on the left.
pub(super) struct Placement {
    origin: Point,
    pixels_per_unit: f32,
    mirror: f32,
    sin: f32,
    cos: f32,
}

impl Placement {
    pub(super) fn new(
        canvas_width: usize,
        canvas_height: usize,
        nuisance: &ImageNuisance,
        mirror: bool,
    ) -> Placement {
        let (w, h) = (canvas_width as f32, canvas_height as f32);
        // Sized from the height as in 11k Hands, unless the photo is unusually narrow; then the
        // hand stays near the top edge, which the forearm must still cross.
        let reference = h.min(0.75 * w);
        let (sin, cos) = super::raster::sin_cos(nuisance.rotation);
        Placement {
            origin: Point::new(
                w * (0.5 + nuisance.shift.0),
                reference * (0.48 + nuisance.shift.1),
            ),
            pixels_per_unit: 0.42 * reference * nuisance.scale,
            mirror: if mirror { -1.0 } else { 1.0 },
            sin,
            cos,
        }
    }

    pub(super) fn point(&self, p: Point) -> Point {
        let x = self.mirror * p.x * self.pixels_per_unit;
        let y = p.y * self.pixels_per_unit;
        Point::new(
            self.origin.x + x * self.cos - y * self.sin,
            self.origin.y + x * self.sin + y * self.cos,
        )
    }

    pub(super) fn length(&self, units: f32) -> f32 {
        units * self.pixels_per_unit
    }

    pub(super) fn circles(&self, blob: &Blob) -> Vec<Circle> {
        blob.0
            .iter()
            .map(|c| Circle {
                centre: self.point(c.centre),
                radius: self.length(c.radius),
            })
            .collect()
    }
}
