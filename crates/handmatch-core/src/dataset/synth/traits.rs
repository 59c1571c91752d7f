//! Per-subject identity: everything that stays the same in every photo of one person, whichever
//! side of the hand the photo shows. Lengths are in hand units (a typical palm is one unit wide).

use rand::Rng;

use super::normal::standard_normal;
use super::raster::Colour;

/// Index, middle, ring, little: the order of `SubjectTraits::fingers`.
pub(super) const FINGER_COUNT: usize = 4;
pub(super) const RING_FINGER: usize = 2;

/// Skin from very fair to dark as the camera sees it lit from the front, keyed by tone 0..=1.
const SKIN_ANCHORS: [(f32, [f32; 3]); 5] = [
    (0.0, [248.0, 224.0, 208.0]),
    (0.25, [234.0, 194.0, 168.0]),
    (0.5, [206.0, 152.0, 118.0]),
    (0.75, [150.0, 101.0, 72.0]),
    (1.0, [96.0, 62.0, 44.0]),
];
/// Palms are lighter and pinker than the back of the hand, the more so the darker the skin.
const PALM_PINK: [f32; 3] = [240.0, 178.0, 166.0];
const RING_METALS: [[f32; 3]; 3] = [
    [222.0, 182.0, 86.0],
    [206.0, 206.0, 212.0],
    [214.0, 158.0, 132.0],
];
const POLISH_COLOURS: [[f32; 3]; 6] = [
    [190.0, 20.0, 40.0],
    [120.0, 10.0, 30.0],
    [235.0, 120.0, 150.0],
    [110.0, 40.0, 120.0],
    [240.0, 110.0, 80.0],
    [40.0, 40.0, 50.0],
];

pub(super) struct FingerTraits {
    /// From the knuckle line to the fingertip.
    pub length: f32,
    pub width: f32,
    /// Resting sideways tilt in radians, towards the thumb when positive.
    pub tilt: f32,
}

pub(super) struct Ring {
    pub metal: Colour,
    /// Where the band sits along the finger, as a fraction of its length.
    pub position: f32,
    pub band_width: f32,
}

/// A crease as four control points of a smooth curve, in palm coordinates: x in palm widths
/// from the palm's centre line (positive towards the thumb), y in palm lengths (0 at the
/// knuckles, -1 at the wrist).
pub(super) type Crease = [(f32, f32); 4];

pub(super) struct PalmLines {
    pub heart: Crease,
    pub head: Crease,
    pub life: Crease,
    /// Short faint creases that make each palm a little different.
    pub minor: Vec<Crease>,
}

pub(super) struct SubjectTraits {
    pub age: u32,
    pub gender: &'static str,
    /// 0 = very fair .. 1 = dark.
    pub skin_tone: f32,
    pub skin: Colour,
    pub palm_skin: Colour,
    pub palm_width: f32,
    pub palm_length: f32,
    pub fingers: [FingerTraits; FINGER_COUNT],
    /// Angle between the thumb and the fingers' direction, radians.
    pub thumb_angle: f32,
    pub thumb_length: f32,
    pub thumb_width: f32,
    pub ring: Option<Ring>,
    pub nail_polish: Option<Colour>,
    /// Nail length as a fraction of the finger's length.
    pub nail_length: f32,
    pub palm_lines: PalmLines,
    /// How many wrinkle lines cross the middle knuckle on the back of each finger.
    pub knuckle_wrinkles: [u8; FINGER_COUNT],
}

fn around(rng: &mut impl Rng, mean: f32, spread: f32) -> f32 {
    mean + spread * standard_normal(rng)
}

fn skin_colour(tone: f32) -> [f32; 3] {
    let upper = SKIN_ANCHORS
        .iter()
        .position(|&(t, _)| t >= tone)
        .unwrap_or(SKIN_ANCHORS.len() - 1)
        .max(1);
    let (t0, c0) = SKIN_ANCHORS[upper - 1];
    let (t1, c1) = SKIN_ANCHORS[upper];
    let f = ((tone - t0) / (t1 - t0)).clamp(0.0, 1.0);
    [0, 1, 2].map(|i| c0[i] + (c1[i] - c0[i]) * f)
}

fn perturbed(rng: &mut impl Rng, crease: Crease, amount: f32) -> Crease {
    crease.map(|(x, y)| {
        (
            x + amount * standard_normal(rng),
            y + amount * standard_normal(rng),
        )
    })
}

impl PalmLines {
    fn sample(rng: &mut impl Rng) -> Self {
        let heart = perturbed(
            rng,
            [(-0.46, -0.28), (-0.15, -0.27), (0.08, -0.2), (0.2, -0.06)],
            0.025,
        );
        let head = perturbed(
            rng,
            [(0.47, -0.4), (0.2, -0.44), (-0.08, -0.52), (-0.32, -0.62)],
            0.03,
        );
        let life = perturbed(
            rng,
            [(0.47, -0.38), (0.24, -0.5), (0.13, -0.72), (0.16, -0.97)],
            0.025,
        );
        let minor = (0..rng.random_range(1..=3))
            .map(|_| {
                let (x, y) = (rng.random_range(-0.35..0.25), rng.random_range(-0.85..-0.3));
                let (dx, dy) = (rng.random_range(-0.15..0.15), rng.random_range(-0.12..0.12));
                [
                    (x, y),
                    (x + dx / 3.0, y + dy / 3.0),
                    (x + 2.0 * dx / 3.0, y + 2.0 * dy / 3.0),
                    (x + dx, y + dy),
                ]
            })
            .collect();
        PalmLines {
            heart,
            head,
            life,
            minor,
        }
    }
}

impl SubjectTraits {
    pub(super) fn sample(rng: &mut impl Rng) -> Self {
        let age = rng.random_range(18..=75);
        let gender = if rng.random_bool(0.5) {
            "male"
        } else {
            "female"
        };
        let skin_tone: f32 = rng.random();
        let redness = around(rng, 0.0, 0.03);
        let base = skin_colour(skin_tone);
        let skin = Colour([
            base[0] * (1.0 + redness),
            base[1],
            base[2] * (1.0 - redness),
        ]);
        let palm_skin = skin.mix(Colour(PALM_PINK), 0.25 + 0.35 * skin_tone);

        let palm_width = around(rng, 1.0, 0.06).clamp(0.85, 1.15);
        let palm_length = palm_width * around(rng, 1.0, 0.05).clamp(0.9, 1.12);
        let middle = palm_length * around(rng, 0.96, 0.05).clamp(0.84, 1.08);
        let slenderness = around(rng, 1.0, 0.07).clamp(0.85, 1.15);
        // Relative to the middle finger: index, middle, ring, little.
        let relative_length = [
            around(rng, 0.91, 0.03).clamp(0.84, 0.98),
            1.0,
            around(rng, 0.94, 0.03).clamp(0.87, 1.0),
            around(rng, 0.74, 0.04).clamp(0.64, 0.84),
        ];
        let relative_width = [0.225, 0.23, 0.215, 0.185];
        let fingers = [0, 1, 2, 3].map(|f| FingerTraits {
            length: middle * relative_length[f],
            width: palm_width * relative_width[f] * slenderness * around(rng, 1.0, 0.03),
            tilt: around(rng, 0.0, 0.03),
        });
        let thumb_angle = rng.random_range(0.38f32..0.72);
        let thumb_length = palm_length * around(rng, 0.84, 0.04).clamp(0.74, 0.94);
        let thumb_width = palm_width * 0.29 * slenderness;

        let ring = rng.random_bool(0.3).then(|| Ring {
            metal: Colour(RING_METALS[rng.random_range(0..RING_METALS.len())]),
            position: rng.random_range(0.2..0.27),
            band_width: rng.random_range(0.035..0.07),
        });
        let nail_polish = rng
            .random_bool(0.15)
            .then(|| Colour(POLISH_COLOURS[rng.random_range(0..POLISH_COLOURS.len())]));
        let nail_length = rng.random_range(0.17..0.23);
        let palm_lines = PalmLines::sample(rng);
        let knuckle_wrinkles = [0; FINGER_COUNT].map(|_| rng.random_range(2..=4));

        SubjectTraits {
            age,
            gender,
            skin_tone,
            skin,
            palm_skin,
            palm_width,
            palm_length,
            fingers,
            thumb_angle,
            thumb_length,
            thumb_width,
            ring,
            nail_polish,
            nail_length,
            palm_lines,
            knuckle_wrinkles,
        }
    }

    /// The 11k Hands `skinColor` label for this subject's tone.
    pub(super) fn skin_color_name(&self) -> &'static str {
        match self.skin_tone {
            t if t < 0.12 => "very fair",
            t if t < 0.45 => "fair",
            t if t < 0.75 => "medium",
            _ => "dark",
        }
    }
}
