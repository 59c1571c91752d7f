//! Cross-batch memory (Wang et al., "Cross-Batch Memory for Embedding Learning", 2020):
//! embeddings of recent batches kept as extra positive and negative candidates for the
//! triplet loss, so mining sees many more subjects than one P×K batch holds. The stored
//! rows are detached; they drift as the head trains, which is why the memory is a short
//! FIFO and usually switched on only after a warm-up.

use candle_core::{bail, Result, Tensor};

use crate::fit::view::View;

#[derive(Debug, Clone)]
pub struct CrossBatchMemory {
    capacity: usize,
    /// `[len, E]`, detached; `None` until the first push.
    embeddings: Option<Tensor>,
    subjects: Vec<u32>,
    views: Vec<View>,
}

impl CrossBatchMemory {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            embeddings: None,
            subjects: Vec::new(),
            views: Vec::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    pub fn embeddings(&self) -> Option<&Tensor> {
        self.embeddings.as_ref()
    }

    pub fn subjects(&self) -> &[u32] {
        &self.subjects
    }

    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// Appends a batch (detached), dropping the oldest rows beyond the capacity. Call it
    /// after the loss of that batch, or its rows would meet themselves as candidates.
    pub fn push(&mut self, embeddings: &Tensor, subjects: &[u32], views: &[View]) -> Result<()> {
        let rows = embeddings.dim(0)?;
        if subjects.len() != rows || views.len() != rows {
            bail!(
                "memory push of {rows} rows with {} subjects and {} views",
                subjects.len(),
                views.len()
            );
        }
        let incoming = embeddings.detach();
        let all = match self.embeddings.take() {
            Some(old) => Tensor::cat(&[&old, &incoming.to_dtype(old.dtype())?], 0)?,
            None => incoming,
        };
        self.subjects.extend_from_slice(subjects);
        self.views.extend_from_slice(views);
        let excess = self.subjects.len().saturating_sub(self.capacity);
        self.subjects.drain(..excess);
        self.views.drain(..excess);
        self.embeddings = if self.subjects.is_empty() {
            None
        } else {
            // `contiguous` so the kept rows stop sharing storage with the dropped ones.
            Some(all.narrow(0, excess, self.subjects.len())?.contiguous()?)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn keeps_the_newest_rows_up_to_capacity() {
        let mut memory = CrossBatchMemory::new(3);
        let batch =
            |first: f32| Tensor::new(&[[first, 0.0], [first + 1.0, 0.0]], &Device::Cpu).unwrap();
        memory
            .push(&batch(0.0), &[0, 1], &[View::Dorsal, View::Palmar])
            .unwrap();
        assert_eq!(memory.len(), 2);
        memory
            .push(&batch(2.0), &[2, 3], &[View::Dorsal, View::Palmar])
            .unwrap();
        assert_eq!(memory.len(), 3);
        assert_eq!(memory.subjects(), &[1, 2, 3]);
        assert_eq!(memory.views(), &[View::Palmar, View::Dorsal, View::Palmar]);
        let first_column: Vec<f32> = memory
            .embeddings()
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(first_column, vec![1.0, 2.0, 3.0]);
    }
}
