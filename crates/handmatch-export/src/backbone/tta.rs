//! Test-time augmentation in the graph (`--tta flip,shift`): the backbone sees the crop and
//! its mirrored and shifted copies as one larger batch, and the features of the views are
//! averaged before the head (for a linear head that is averaging the embeddings before
//! the L2 normalisation). Features that are mirror-invariant stay as they were. Being in
//! the graph, the trainer extracts exactly what the server embeds.

use std::fmt;
use std::str::FromStr;

use crate::onnx::graph::Attr;
use crate::onnx::GraphBuilder;

/// How far the shifted views move, in pixels of the crop.
pub const SHIFT_PIXELS: i64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TtaView {
    /// The crop mirrored left to right.
    Flip,
    /// Two views, moved `SHIFT_PIXELS` down-right and up-left (edges repeated).
    Shift,
}

impl TtaView {
    fn name(self) -> &'static str {
        match self {
            Self::Flip => "flip",
            Self::Shift => "shift",
        }
    }
}

/// The extra views; empty means none (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tta(Vec<TtaView>);

impl Tta {
    pub const fn none() -> Self {
        Self(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Views per image, the crop itself included.
    pub fn views(&self) -> usize {
        1 + self
            .0
            .iter()
            .map(|v| match v {
                TtaView::Flip => 1,
                TtaView::Shift => 2,
            })
            .sum::<usize>()
    }

    /// `[N, 3, S, S]` → `[V·N, 3, S, S]`: the crops first, then each view's copies.
    pub fn expand(&self, g: &mut GraphBuilder, pixels: &str, side: usize) -> String {
        let mut views = vec![pixels.to_string()];
        for view in &self.0 {
            match view {
                TtaView::Flip => views.push(mirrored(g, pixels)),
                TtaView::Shift => {
                    views.push(shifted(g, pixels, side, SHIFT_PIXELS));
                    views.push(shifted(g, pixels, side, -SHIFT_PIXELS));
                }
            }
        }
        let refs: Vec<&str> = views.iter().map(String::as_str).collect();
        g.op("Concat", &refs, vec![("axis", Attr::Int(0))])
    }

    /// `[V·N, D]` → `[N, D]`, the mean over the views.
    pub fn average(&self, g: &mut GraphBuilder, features: &str, dim: usize) -> String {
        let stacked = g.reshape(features, &[self.views() as i64, -1, dim as i64]);
        g.op(
            "ReduceMean",
            &[&stacked],
            vec![("axes", Attr::Ints(vec![0])), ("keepdims", Attr::Int(0))],
        )
    }
}

fn mirrored(g: &mut GraphBuilder, pixels: &str) -> String {
    let starts = g.const_i64("starts", &[-1]);
    let ends = g.const_i64("ends", &[i64::MIN]);
    let axes = g.const_i64("axes", &[3]);
    let steps = g.const_i64("steps", &[-1]);
    g.op("Slice", &[pixels, &starts, &ends, &axes, &steps], vec![])
}

/// The content moved by `by` pixels along both axes, the edge rows and columns repeated.
fn shifted(g: &mut GraphBuilder, pixels: &str, side: usize, by: i64) -> String {
    let s = side as i64;
    let (before, after, start) = if by > 0 { (by, 0, 0) } else { (0, -by, -by) };
    let pads = g.const_i64("pads", &[0, 0, before, before, 0, 0, after, after]);
    let padded = g.op("Pad", &[pixels, &pads], vec![("mode", Attr::Str("edge"))]);
    let rows = g.slice(&padded, 2, start, start + s);
    g.slice(&rows, 3, start, start + s)
}

impl FromStr for Tta {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut views = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            views.push(match name {
                "flip" => TtaView::Flip,
                "shift" => TtaView::Shift,
                "none" => continue,
                other => {
                    return Err(format!(
                        "unknown test-time view `{other}` (expected flip, shift or none)"
                    ))
                }
            });
        }
        views.sort();
        views.dedup();
        Ok(Self(views))
    }
}

impl fmt::Display for Tta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|v| v.name()).collect();
        f.write_str(&names.join("+"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_parse_and_count() {
        let t: Tta = "shift, flip".parse().unwrap();
        assert_eq!((t.to_string(), t.views()), ("flip+shift".into(), 4));
        let none: Tta = "none".parse().unwrap();
        assert!(none.is_empty() && none.views() == 1 && none == Tta::default());
        assert!("rotate".parse::<Tta>().unwrap_err().contains("`rotate`"));
    }
}
