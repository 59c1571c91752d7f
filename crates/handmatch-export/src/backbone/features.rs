//! What a backbone adds to the graph: the name of its feature output, its width, and which
//! columns belong to which part (feature groups of the hand backbone, a checkpoint's
//! pooled output), so heads can read a part of them.

pub struct Features {
    pub value: String,
    pub dim: usize,
    /// A short description for the artefact's metadata, e.g. `dinov2(hidden=768,layers=12)`.
    pub description: String,
    /// `(part, width)` in column order; the widths sum to `dim`.
    pub layout: Vec<(String, usize)>,
}

/// `part:width,part:width,…`, as the backbone graph's `feature_layout` metadata says it.
pub fn layout_string(layout: &[(String, usize)]) -> String {
    let parts: Vec<String> = layout.iter().map(|(p, w)| format!("{p}:{w}")).collect();
    parts.join(",")
}

/// Reads `layout_string`'s output back.
pub fn parse_layout(text: &str) -> Result<Vec<(String, usize)>, String> {
    text.split(',')
        .map(|part| {
            let (name, width) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}` is not PART:WIDTH"))?;
            let width = width
                .parse()
                .map_err(|_| format!("`{part}`: the width is not a number"))?;
            Ok((name.to_string(), width))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_survives_its_string() {
        let l = vec![("geometry".to_string(), 400), ("trunk".to_string(), 1152)];
        assert_eq!(parse_layout(&layout_string(&l)).unwrap(), l);
        assert!(parse_layout("trunk").is_err());
    }
}
