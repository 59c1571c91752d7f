//! 2-D similarity transforms (rotation, uniform scale, translation, optional mirror), kept
//! as a 2x3 matrix so they compose exactly and hand straight to imageproc's warp.

use super::landmarks::{INDEX_MCP, LANDMARKS, MIDDLE_MCP, PINKY_MCP, WRIST};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `[a, b, c, d, e, f]`: `x' = a·x + b·y + c`, `y' = d·x + e·y + f`.
    pub m: [f32; 6],
}

/// Where the canonical crop puts the hand, as fractions of its side S.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CanonicalPose {
    /// The index-to-pinky knuckle distance becomes this fraction of S.
    pub palm_width: f32,
    /// The point `wrist + centre_along · (middle knuckle − wrist)` lands at the crop's centre.
    pub centre_along: f32,
}

impl Default for CanonicalPose {
    fn default() -> Self {
        // A hand is about 2.6 palm widths long, and the point 0.85 of the way from the
        // wrist to the middle knuckle is about its middle: this leaves the whole hand,
        // fingers and thumb spread, inside the crop with a margin (checked by eye on
        // 11k Hands photos, docs/hand-alignment.png).
        Self {
            palm_width: 0.24,
            centre_along: 0.85,
        }
    }
}

impl Similarity {
    pub const IDENTITY: Similarity = Similarity {
        m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    };

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let [a, b, c, d, e, f] = self.m;
        [a * p[0] + b * p[1] + c, d * p[0] + e * p[1] + f]
    }

    /// `self` first, then `next`.
    pub fn then(&self, next: &Similarity) -> Similarity {
        let [a1, b1, c1, d1, e1, f1] = self.m;
        let [a2, b2, c2, d2, e2, f2] = next.m;
        Similarity {
            m: [
                a2 * a1 + b2 * d1,
                a2 * b1 + b2 * e1,
                a2 * c1 + b2 * f1 + c2,
                d2 * a1 + e2 * d1,
                d2 * b1 + e2 * e1,
                d2 * c1 + e2 * f1 + f2,
            ],
        }
    }

    pub fn inverse(&self) -> Similarity {
        let [a, b, c, d, e, f] = self.m;
        let det = a * e - b * d;
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Similarity {
            m: [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)],
        }
    }

    pub fn scale(&self) -> f32 {
        (self.m[0] * self.m[4] - self.m[1] * self.m[3]).abs().sqrt()
    }

    pub fn to_matrix(&self) -> [f32; 9] {
        let [a, b, c, d, e, f] = self.m;
        [a, b, c, d, e, f, 0.0, 0.0, 1.0]
    }

    /// Maps image points to the canonical `side`-square crop: wrist → middle knuckle points
    /// up, palm width fixed, and mirrored when needed so that every hand looks like a right
    /// hand seen from the back (index knuckle left of the pinky knuckle), whatever the view.
    pub fn canonical(points: &[[f32; 2]; LANDMARKS], side: f32, pose: CanonicalPose) -> Self {
        let sub = |a: [f32; 2], b: [f32; 2]| [a[0] - b[0], a[1] - b[1]];
        let norm = |v: [f32; 2]| (v[0] * v[0] + v[1] * v[1]).sqrt();
        let w = points[WRIST];
        let axis = sub(points[MIDDLE_MCP], w);
        let palm = norm(sub(points[INDEX_MCP], points[PINKY_MCP])).max(1e-3);
        let s = pose.palm_width * side / palm;
        // Rotate `axis` onto (0, −1), image "up".
        let len = norm(axis).max(1e-3);
        let (ux, uy) = (axis[0] / len, axis[1] / len);
        // R maps u to (0, −1): R = [[−uy, ux], [−ux, −uy]].
        let (a, b, d, e) = (-uy * s, ux * s, -ux * s, -uy * s);
        let centre = [
            w[0] + pose.centre_along * axis[0],
            w[1] + pose.centre_along * axis[1],
        ];
        let half = side / 2.0;
        let mut t = Similarity {
            m: [
                a,
                b,
                half - (a * centre[0] + b * centre[1]),
                d,
                e,
                half - (d * centre[0] + e * centre[1]),
            ],
        };
        if t.apply(points[INDEX_MCP])[0] > t.apply(points[PINKY_MCP])[0] {
            let mirror = Similarity {
                m: [-1.0, 0.0, side, 0.0, 1.0, 0.0],
            };
            t = t.then(&mirror);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hand(rotate_deg: f32, mirror: bool) -> [[f32; 2]; LANDMARKS] {
        // An upright right hand seen from the back (index left of pinky), then moved.
        let mut p = [[0.0f32; 2]; LANDMARKS];
        p[WRIST] = [0.0, 0.0];
        p[MIDDLE_MCP] = [0.0, -100.0];
        p[INDEX_MCP] = [-35.0, -95.0];
        p[PINKY_MCP] = [35.0, -85.0];
        let (s, c) = rotate_deg.to_radians().sin_cos();
        p.map(|[x, y]| {
            let x = if mirror { -x } else { x };
            [300.0 + 2.0 * (c * x - s * y), 200.0 + 2.0 * (s * x + c * y)]
        })
    }

    #[test]
    fn any_rotation_and_either_hand_lands_in_the_same_pose() {
        let reference = Similarity::canonical(&hand(0.0, false), 224.0, CanonicalPose::default());
        let expected =
            [WRIST, MIDDLE_MCP, INDEX_MCP, PINKY_MCP].map(|i| reference.apply(hand(0.0, false)[i]));
        // Up, centred, the pose's palm width.
        assert!((expected[1][0] - 112.0).abs() < 1e-3 && expected[1][1] < expected[0][1]);
        let palm = ((expected[2][0] - expected[3][0]).powi(2)
            + (expected[2][1] - expected[3][1]).powi(2))
        .sqrt();
        let want = CanonicalPose::default().palm_width * 224.0;
        assert!((palm - want).abs() < 1e-2, "{palm} vs {want}");
        assert!(expected[2][0] < expected[3][0]);
        for (deg, mirror) in [(90.0, false), (180.0, true), (-37.0, true), (211.0, false)] {
            let pts = hand(deg, mirror);
            let t = Similarity::canonical(&pts, 224.0, CanonicalPose::default());
            for (k, i) in [WRIST, MIDDLE_MCP, INDEX_MCP, PINKY_MCP]
                .into_iter()
                .enumerate()
            {
                let got = t.apply(pts[i]);
                assert!(
                    (got[0] - expected[k][0]).abs() < 1e-2
                        && (got[1] - expected[k][1]).abs() < 1e-2,
                    "rotation {deg}, mirror {mirror}: landmark {i} at {got:?}, expected {:?}",
                    expected[k]
                );
            }
        }
    }

    #[test]
    fn composition_is_application_in_order() {
        let a = Similarity {
            m: [0.0, -2.0, 5.0, 2.0, 0.0, -1.0],
        };
        let b = Similarity {
            m: [-1.0, 0.0, 10.0, 0.0, 1.0, 3.0],
        };
        let p = [3.0, 7.0];
        let want = b.apply(a.apply(p));
        let got = a.then(&b).apply(p);
        assert!((want[0] - got[0]).abs() < 1e-5 && (want[1] - got[1]).abs() < 1e-5);
        let back = a.then(&b).inverse().apply(got);
        assert!((back[0] - p[0]).abs() < 1e-4 && (back[1] - p[1]).abs() < 1e-4);
        assert!((a.scale() - 2.0).abs() < 1e-6);
    }
}
