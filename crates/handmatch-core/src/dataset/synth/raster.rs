//! A tiny anti-aliased rasteriser for convex shapes, built so that debug builds stay fast: the
//! inside of every shape is filled row by row with `copy_from_slice` from a pre-made row of its
//! colour ("paint"), so most pixels are written by optimised `memcpy` rather than by this crate's
//! unoptimised code; only the pixels on a shape's edge are blended one by one, with their exact
//! horizontal coverage averaged over two sub-rows. (Drawing at twice the size and shrinking would
//! need a full per-pixel pass, and the resizers available are either generic, so unoptimised here,
//! or slow.) Sensor noise is baked into each paint row; each canvas row reads its paint at its own
//! random offset so that the noise does not line up in columns.

use image::RgbImage;
use rand::Rng;

use super::normal::standard_normal;

/// Room for per-row offsets into a paint row.
const GRAIN_SHIFT: usize = 251;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Colour(pub [f32; 3]);

impl Colour {
    pub(super) const WHITE: Colour = Colour([255.0; 3]);

    pub(super) fn mix(self, other: Colour, t: f32) -> Colour {
        Colour([0, 1, 2].map(|i| self.0[i] + (other.0[i] - self.0[i]) * t))
    }

    pub(super) fn shade(self, factor: f32) -> Colour {
        Colour(self.0.map(|c| c * factor))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub(super) const fn new(x: f32, y: f32) -> Self {
        Point { x, y }
    }

    pub(super) fn add(self, other: Point) -> Point {
        Point::new(self.x + other.x, self.y + other.y)
    }

    pub(super) fn sub(self, other: Point) -> Point {
        Point::new(self.x - other.x, self.y - other.y)
    }

    pub(super) fn scale(self, factor: f32) -> Point {
        Point::new(self.x * factor, self.y * factor)
    }

    pub(super) fn lerp(self, other: Point, t: f32) -> Point {
        self.add(other.sub(self).scale(t))
    }

    /// The same direction turned a quarter turn.
    pub(super) fn perpendicular(self) -> Point {
        Point::new(-self.y, self.x)
    }

    /// Unit vector at `angle` radians from +y towards +x.
    pub(super) fn direction(angle: f32) -> Point {
        let (sin, cos) = sin_cos(angle);
        Point::new(sin, cos)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Circle {
    pub centre: Point,
    pub radius: f32,
}

/// sin and cos from plain arithmetic (quadrant reduction + Taylor series in f64): the platform's
/// `sinf`/`cosf` may differ in the last bit between systems, and a flipped bit can move a polygon
/// edge across a pixel centre and break byte-identical output.
pub(super) fn sin_cos(angle: f32) -> (f32, f32) {
    let half_pi = std::f64::consts::FRAC_PI_2;
    let a = f64::from(angle);
    let quadrant = (a / half_pi).round();
    let r = a - quadrant * half_pi;
    let r2 = r * r;
    let sin = r * (1.0 - r2 / 6.0 * (1.0 - r2 / 20.0 * (1.0 - r2 / 42.0 * (1.0 - r2 / 72.0))));
    let cos = 1.0 - r2 / 2.0 * (1.0 - r2 / 12.0 * (1.0 - r2 / 30.0 * (1.0 - r2 / 56.0)));
    let (s, c) = match (quadrant as i64).rem_euclid(4) {
        0 => (sin, cos),
        1 => (cos, -sin),
        2 => (-sin, -cos),
        _ => (-cos, sin),
    };
    (s as f32, c as f32)
}

/// Brightness, contrast and white balance of one photo, applied to every colour before it is
/// painted (cheaper than a pass over the pixels).
#[derive(Debug, Clone, Copy)]
pub(super) struct Grade {
    pub brightness: f32,
    pub contrast: f32,
    pub white_balance: [f32; 3],
}

impl Grade {
    fn apply(&self, colour: Colour) -> [f32; 3] {
        [0, 1, 2].map(|i| {
            (colour.0[i] * self.white_balance[i] - 128.0) * self.contrast + 128.0 + self.brightness
        })
    }
}

/// One colour, graded and with the photo's grain, as a row of RGB pixels to copy from.
pub(super) struct Paint(Vec<u8>);

pub(super) struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
    grain: Vec<i16>,
    row_shift: Vec<usize>,
    grade: Grade,
}

impl Canvas {
    pub(super) fn new(
        width: usize,
        height: usize,
        grade: Grade,
        noise_sigma: f32,
        rng: &mut impl Rng,
    ) -> Self {
        let grain = (0..width + GRAIN_SHIFT)
            .map(|_| (noise_sigma * standard_normal(rng)).round() as i16)
            .collect();
        let row_shift = (0..height)
            .map(|_| rng.random_range(0..GRAIN_SHIFT))
            .collect();
        Canvas {
            width,
            height,
            rgb: vec![0; width * height * 3],
            grain,
            row_shift,
            grade,
        }
    }

    pub(super) fn width(&self) -> usize {
        self.width
    }

    pub(super) fn height(&self) -> usize {
        self.height
    }

    pub(super) fn paint(&self, colour: Colour) -> Paint {
        let [r, g, b] = self
            .grade
            .apply(colour)
            .map(|c| c.round().clamp(0.0, 255.0) as i16);
        let mut row = vec![0u8; self.grain.len() * 3];
        // Plain indexed loop: iterator adapters cost far more than the arithmetic in debug builds.
        let mut i = 0;
        for &grain in &self.grain {
            row[i] = (r + grain).clamp(0, 255) as u8;
            row[i + 1] = (g + grain).clamp(0, 255) as u8;
            row[i + 2] = (b + grain).clamp(0, 255) as u8;
            i += 3;
        }
        Paint(row)
    }

    fn fill_span(&mut self, row: usize, first: usize, end: usize, paint: &Paint) {
        let shift = self.row_shift[row];
        let start = row * self.width;
        self.rgb[(start + first) * 3..(start + end) * 3]
            .copy_from_slice(&paint.0[(shift + first) * 3..(shift + end) * 3]);
    }

    /// Mixes `coverage` (0..=1) of the paint into one pixel.
    fn blend(&mut self, row: usize, column: usize, coverage: f32, paint: &Paint) {
        let weight = (coverage * 256.0) as i32;
        if weight <= 0 {
            return;
        }
        let at = (row * self.width + column) * 3;
        let from = (self.row_shift[row] + column) * 3;
        for channel in 0..3 {
            let old = i32::from(self.rgb[at + channel]);
            let new = i32::from(paint.0[from + channel]);
            self.rgb[at + channel] = (old + (((new - old) * weight) >> 8)) as u8;
        }
    }

    pub(super) fn fill_rows(&mut self, rows: std::ops::Range<usize>, paint: &Paint) {
        for row in rows.start..rows.end.min(self.height) {
            self.fill_span(row, 0, self.width, paint);
        }
    }

    /// Fills the convex hull of `circles` (a capsule for two circles, a rounded polygon for more).
    pub(super) fn fill_circles(&mut self, circles: &[Circle], paint: &Paint) {
        let outline = match circles {
            [a, b] => capsule_outline(*a, *b),
            _ => circle_hull(circles),
        };
        self.fill_convex(&outline, paint);
    }

    /// Fills a convex polygon, walking its two boundary chains down from the top vertex.
    pub(super) fn fill_convex(&mut self, polygon: &[Point], paint: &Paint) {
        if polygon.len() < 3 {
            return;
        }
        let mut top = 0;
        let mut bottom = 0;
        for (i, p) in polygon.iter().enumerate() {
            if p.y < polygon[top].y {
                top = i;
            }
            if p.y > polygon[bottom].y {
                bottom = i;
            }
        }
        let (y_min, y_max) = (polygon[top].y, polygon[bottom].y);
        let first_row = y_min.floor().max(0.0);
        let end_row = y_max.ceil().min(self.height as f32);
        if first_row >= end_row {
            return;
        }
        let mut forward = ChainWalker::new(polygon, top, bottom, 1);
        let mut backward = ChainWalker::new(polygon, top, bottom, polygon.len() - 1);
        let mut span_at = |y: f32| {
            if y < y_min || y > y_max {
                return None;
            }
            let (a, b) = (forward.x_at(y), backward.x_at(y));
            Some((a.min(b), a.max(b)))
        };
        for row in first_row as usize..end_row as usize {
            let upper = span_at(row as f32 + 0.25);
            let lower = span_at(row as f32 + 0.75);
            let (left, right, inner_left, inner_right) = match (upper, lower) {
                (Some(u), Some(l)) => (u.0.min(l.0), u.1.max(l.1), u.0.max(l.0), u.1.min(l.1)),
                (Some(s), None) | (None, Some(s)) => (s.0, s.1, f32::INFINITY, f32::NEG_INFINITY),
                (None, None) => continue,
            };
            let left = left.max(0.0);
            let right = right.min(self.width as f32);
            if left >= right {
                continue;
            }
            // Columns every sub-row covers completely take a plain copy.
            let solid_first = inner_left.ceil().max(left.ceil());
            let solid_end = inner_right.floor().min(right.floor());
            let (edge_end, edge_start) = if solid_first < solid_end {
                self.fill_span(row, solid_first as usize, solid_end as usize, paint);
                (solid_first as usize, solid_end as usize)
            } else {
                let middle = left.floor() as usize;
                (middle, middle)
            };
            let coverage = |column: usize| {
                let (x0, x1) = (column as f32, column as f32 + 1.0);
                let overlap = |s: Option<(f32, f32)>| match s {
                    Some((a, b)) => (b.min(x1) - a.max(x0)).max(0.0),
                    None => 0.0,
                };
                (overlap(upper) + overlap(lower)) / 2.0
            };
            for column in left.floor() as usize..edge_end {
                self.blend(row, column, coverage(column), paint);
            }
            for column in edge_start.max(edge_end)..right.ceil() as usize {
                self.blend(row, column, coverage(column), paint);
            }
        }
    }

    pub(super) fn into_image(self) -> RgbImage {
        RgbImage::from_raw(self.width as u32, self.height as u32, self.rgb)
            .expect("canvas buffer matches its size")
    }
}

/// Follows one side of a convex polygon from its top vertex to its bottom vertex.
struct ChainWalker<'a> {
    polygon: &'a [Point],
    current: usize,
    bottom: usize,
    step: usize,
}

impl<'a> ChainWalker<'a> {
    fn new(polygon: &'a [Point], top: usize, bottom: usize, step: usize) -> Self {
        ChainWalker {
            polygon,
            current: top,
            bottom,
            step,
        }
    }

    /// `y` must not decrease between calls.
    fn x_at(&mut self, y: f32) -> f32 {
        let n = self.polygon.len();
        while self.current != self.bottom {
            let next = (self.current + self.step) % n;
            if self.polygon[next].y < y {
                self.current = next;
            } else {
                let (a, b) = (self.polygon[self.current], self.polygon[next]);
                let dy = b.y - a.y;
                return if dy > 1e-6 {
                    a.x + (b.x - a.x) * (y - a.y) / dy
                } else {
                    a.x
                };
            }
        }
        self.polygon[self.bottom].x
    }
}

/// The hull of two circles, built directly in order (most shapes are capsules, and sorting points
/// for a general hull is slow in debug builds): the far arc of `b`, then the far arc of `a`,
/// joined by the two outer tangents.
fn capsule_outline(a: Circle, b: Circle) -> Vec<Point> {
    let axis = b.centre.sub(a.centre);
    let distance = (axis.x * axis.x + axis.y * axis.y).sqrt();
    if distance <= (a.radius - b.radius).abs() + 1e-4 {
        let bigger = if a.radius >= b.radius { a } else { b };
        return circle_hull(&[bigger]);
    }
    let u = axis.scale(1.0 / distance);
    let n = u.perpendicular();
    // The tangent points sit at the same direction from both centres.
    let sin = (a.radius - b.radius) / distance;
    let cos = (1.0 - sin * sin).sqrt();
    let side = |sign: f32| u.scale(-sin).add(n.scale(sign * cos));
    let (left, right) = (side(1.0), side(-1.0));
    let mut outline = Vec::new();
    let mut arc = |centre: Point, radius: f32, from: Point, via: Point, to: Point| {
        let steps = ((radius * 0.4).ceil() as usize).clamp(2, 16);
        for (start, end) in [(from, via), (via, to)] {
            for k in 0..steps {
                let d = start.lerp(end, k as f32 / steps as f32);
                let norm = (d.x * d.x + d.y * d.y).sqrt();
                outline.push(centre.add(d.scale(radius / norm)));
            }
        }
    };
    arc(b.centre, b.radius, right, u, left);
    arc(a.centre, a.radius, left, u.scale(-1.0), right);
    outline
}

/// The convex hull of points sampled around each circle (Andrew's monotone chain).
fn circle_hull(circles: &[Circle]) -> Vec<Point> {
    let mut points = Vec::new();
    for circle in circles {
        let steps = ((circle.radius * 0.8).ceil() as usize).clamp(8, 64);
        for k in 0..steps {
            let angle = k as f32 * (std::f32::consts::TAU / steps as f32);
            let (sin, cos) = sin_cos(angle);
            points.push(Point::new(
                circle.centre.x + circle.radius * cos,
                circle.centre.y + circle.radius * sin,
            ));
        }
    }
    points.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    let mut hull: Vec<Point> = Vec::with_capacity(points.len() + 1);
    for &p in &points {
        push_convex(&mut hull, 0, p);
    }
    hull.pop();
    let lower_len = hull.len();
    for &p in points.iter().rev() {
        push_convex(&mut hull, lower_len, p);
    }
    hull.pop();
    hull
}

/// Adds `p` to the chain after `floor`, dropping earlier chain points that would make a
/// clockwise or straight turn.
fn push_convex(hull: &mut Vec<Point>, floor: usize, p: Point) {
    while hull.len() >= floor + 2 {
        let (o, a) = (hull[hull.len() - 2], hull[hull.len() - 1]);
        if (a.x - o.x) * (p.y - o.y) - (a.y - o.y) * (p.x - o.x) > 0.0 {
            break;
        }
        hull.pop();
    }
    hull.push(p);
}
