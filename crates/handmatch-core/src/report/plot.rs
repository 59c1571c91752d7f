//! Line charts (CMC curves, any x/y series) and overlaid histograms (score distributions).

use std::ops::Range;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::PlotError;
use super::font::{ensure_registered, FAMILY};
use super::png::write_png_atomically;

const SIZE: (u32, u32) = (900, 600);

/// A named curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One curve per series, with a legend. The y axis is fixed to 0..1 when every value lies
/// there (rates stay comparable across charts) and otherwise spans the data.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    check_finite(
        title,
        series
            .iter()
            .map(|s| (&s.name, s.points.iter().flat_map(|&(x, y)| [x, y]))),
    )?;
    let xs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x_range = padded_range(xs(), 0.0).ok_or_else(|| no_data(title))?;
    let y_range = if ys().all(|y| (0.0..=1.0).contains(&y)) {
        0.0..1.0
    } else {
        padded_range(ys(), 0.05).ok_or_else(|| no_data(title))?
    };
    // Sampling along each segment, not just at vertices: a line between two distant
    // points crosses corners too.
    let along_lines = series.iter().flat_map(|s| {
        s.points
            .windows(2)
            .flat_map(|w| {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                (0..8).map(move |i| {
                    let t = i as f64 / 8.0;
                    (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
                })
            })
            .chain(s.points.last().copied())
    });
    let legend = emptiest_corner(along_lines, &x_range, &y_range, false);
    let integral_x = xs().all(|x| x.fract() == 0.0);
    render(path, title, |root| {
        let mut chart = chart_frame(root, title, x_range, y_range)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_label)
            .y_desc(y_label)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(BLACK.mix(0.04));
        // Ranks and epochs are whole numbers: "5.0" or a tick at 2.5 would be misleading.
        if integral_x {
            mesh.x_label_formatter(&integer_tick);
        }
        mesh.draw()?;
        for (i, s) in series.iter().enumerate() {
            let style = Palette99::pick(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        draw_legend(&mut chart, legend)
    })
}

/// Cumulative match characteristic curves: `curves[i].1[k - 1]` is the identification rate
/// at rank `k`.
pub fn cmc_chart(path: &Path, title: &str, curves: &[(String, Vec<f64>)]) -> Result<(), PlotError> {
    let series: Vec<Series> = curves
        .iter()
        .map(|(name, rates)| Series {
            name: name.clone(),
            points: rates
                .iter()
                .enumerate()
                .map(|(i, &rate)| ((i + 1) as f64, rate))
                .collect(),
        })
        .collect();
    line_chart(path, title, "rank", "identification rate", &series)
}

/// Overlaid histograms over a shared set of `bins` equal-width bins, each series drawn as
/// semi-transparent bars with a step outline. Bar heights are the fraction of that
/// series' values, so a few thousand mated scores and millions of non-mated ones compare
/// on one axis.
pub fn histogram_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<(), PlotError> {
    if bins == 0 {
        return Err(PlotError::ZeroBins {
            title: title.to_string(),
        });
    }
    check_finite(
        title,
        series
            .iter()
            .map(|(name, values)| (name, values.iter().copied())),
    )?;
    let all = || series.iter().flat_map(|(_, values)| values.iter().copied());
    let x_range = padded_range(all(), 0.0).ok_or_else(|| no_data(title))?;
    let width = (x_range.end - x_range.start) / bins as f64;
    let fractions: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, values)| bin_fractions(values, x_range.start, width, bins))
        .collect();
    let highest = fractions.iter().flatten().copied().fold(0.0, f64::max);
    // Headroom above the tallest bar leaves room for the legend.
    let y_range = 0.0..(highest * 1.15).max(f64::MIN_POSITIVE);

    let bar_tops = fractions.iter().flat_map(|f| {
        f.iter()
            .enumerate()
            .map(|(b, &f)| (x_range.start + (b as f64 + 0.5) * width, f))
    });
    let legend = emptiest_corner(bar_tops, &x_range, &y_range, true);

    render(path, title, |root| {
        let mut chart = chart_frame(root, title, x_range.clone(), y_range)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("fraction of values")
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(BLACK.mix(0.04))
            .draw()?;
        for (i, ((name, _), fractions)) in series.iter().zip(&fractions).enumerate() {
            let colour = Palette99::pick(i);
            let left = |b: usize| x_range.start + b as f64 * width;
            chart.draw_series(fractions.iter().enumerate().map(|(b, &f)| {
                Rectangle::new([(left(b), 0.0), (left(b + 1), f)], colour.mix(0.3).filled())
            }))?;
            let step = fractions
                .iter()
                .enumerate()
                .flat_map(|(b, &f)| [(left(b), f), (left(b + 1), f)]);
            let outline = std::iter::once((x_range.start, 0.0))
                .chain(step)
                .chain(std::iter::once((x_range.end, 0.0)));
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(outline, style))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 20, y + 6)], colour.mix(0.5).filled())
                });
        }
        draw_legend(&mut chart, legend)
    })
}

/// The corner whose region (the outer third of each axis) holds the fewest points, so the
/// legend hides as little data as possible. With `filled_below` (histogram bars) a point
/// also covers the lower corners beneath it.
fn emptiest_corner(
    points: impl Iterator<Item = (f64, f64)>,
    x_range: &Range<f64>,
    y_range: &Range<f64>,
    filled_below: bool,
) -> SeriesLabelPosition {
    let (x_span, y_span) = (x_range.end - x_range.start, y_range.end - y_range.start);
    // Order: upper right, upper left, lower right, lower left; ties keep the earlier one.
    let mut crowding = [0usize; 4];
    for (x, y) in points {
        let fx = (x - x_range.start) / x_span;
        let fy = (y - y_range.start) / y_span;
        let right = fx >= 2.0 / 3.0;
        let left = fx <= 1.0 / 3.0;
        let upper = fy >= 2.0 / 3.0;
        let lower = if filled_below {
            fy > 0.0
        } else {
            fy <= 1.0 / 3.0
        };
        for (i, (in_x, in_y)) in [(right, upper), (left, upper), (right, lower), (left, lower)]
            .into_iter()
            .enumerate()
        {
            crowding[i] += usize::from(in_x && in_y);
        }
    }
    let best = (0..4).min_by_key(|&i| crowding[i]).unwrap_or(0);
    match best {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

/// Whole-number tick labels; ticks between whole numbers stay unlabelled.
fn integer_tick(v: &f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", *v as i64)
    } else {
        String::new()
    }
}

/// Fraction of `values` per bin; the top edge falls into the last bin.
fn bin_fractions(values: &[f64], start: f64, width: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    for &v in values {
        let b = (((v - start) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn chart_frame<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
    x_range: Range<f64>,
    y_range: Range<f64>,
) -> DrawResult<Chart<'a, 'b>> {
    Ok(ChartBuilder::on(root)
        .caption(title, (FAMILY, 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?)
}

fn draw_legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
) -> DrawResult<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()?;
    Ok(())
}

/// Draws into an in-memory RGB buffer, then writes it as PNG.
fn render(
    path: &Path,
    title: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult<()>,
) -> Result<(), PlotError> {
    ensure_registered()?;
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        drawn.map_err(|e| PlotError::Drawing {
            title: title.to_string(),
            message: e.to_string(),
        })?;
    }
    write_png_atomically(path, rgb, SIZE)
}

/// `min..max` of `values` widened by `margin` of the span on each side; a single value
/// gets a unit-wide range around it so the axis is not degenerate. `None` when empty.
fn padded_range(values: impl Iterator<Item = f64>, margin: f64) -> Option<Range<f64>> {
    let (lo, hi) = values.fold(None, |acc: Option<(f64, f64)>, v| {
        Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
    })?;
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        return Some(lo - 0.5..hi + 0.5);
    }
    let pad = (hi - lo) * margin;
    Some(lo - pad..hi + pad)
}

fn check_finite<'a, I: Iterator<Item = f64>>(
    title: &str,
    series: impl Iterator<Item = (&'a String, I)>,
) -> Result<(), PlotError> {
    for (name, mut values) in series {
        if !values.all(f64::is_finite) {
            return Err(PlotError::NonFiniteValue {
                title: title.to_string(),
                series: name.clone(),
            });
        }
    }
    Ok(())
}

fn no_data(title: &str) -> PlotError {
    PlotError::NoData {
        title: title.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_range_and_sum_to_one() {
        let f = bin_fractions(&[0.0, 0.1, 0.5, 1.0], 0.0, 0.5, 2);
        assert_eq!(f, [0.5, 0.5]);
    }

    #[test]
    fn ranges_pad_and_never_collapse() {
        assert_eq!(padded_range([0.0, 10.0].into_iter(), 0.1), Some(-1.0..11.0));
        assert_eq!(padded_range([3.0].into_iter(), 0.1), Some(2.5..3.5));
        assert_eq!(padded_range(std::iter::empty(), 0.1), None);
    }
}
