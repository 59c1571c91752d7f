//! What a backbone adds to the graph: the name of its feature output and its width.

pub struct Features {
    pub value: String,
    pub dim: usize,
    /// A short description for the artefact's metadata, e.g. `dinov2(hidden=768,layers=12)`.
    pub description: String,
}
