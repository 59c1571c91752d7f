//! `TopK`: the best `k` rows of a scan without collecting and sorting the whole gallery.
//! Scores below the k-th best seen so far (the floor) are dropped as they come; the buffer
//! is cut back to the best `k` whenever it fills. Rows tied with the k-th score are kept,
//! so the caller's tie-break (subject id) still decides among them.

pub struct TopK {
    k: usize,
    capacity: usize,
    floor: f32,
    found: Vec<(f32, u32)>,
}

impl TopK {
    /// `floor`: scores below it are never kept (`min_score`, or minus infinity).
    pub fn new(k: usize, floor: f32) -> Self {
        let capacity = (2 * k).max(64);
        Self {
            k,
            capacity,
            floor,
            found: Vec::with_capacity(capacity),
        }
    }

    #[inline]
    pub fn offer(&mut self, score: f32, row: u32) {
        if self.k > 0 && score >= self.floor {
            self.found.push((score, row));
            if self.found.len() >= self.capacity {
                self.cut();
            }
        }
    }

    /// Keeps the best `k` and every row tied with the k-th; raises the floor to its score.
    fn cut(&mut self) {
        if self.found.len() > self.k {
            let k = self.k;
            self.found
                .select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            let kth = self.found[k - 1].0;
            self.found.retain(|(s, _)| *s >= kth);
            self.floor = self.floor.max(kth);
        }
        // Many rows tied at the floor: room to grow rather than cut at every offer.
        self.capacity = self.capacity.max(2 * self.found.len());
    }

    /// Takes in another part of the same scan.
    pub fn merge(&mut self, other: TopK) {
        for (score, row) in other.found {
            self.offer(score, row);
        }
    }

    /// The candidates, unordered: the best `k` and any rows tied with the k-th.
    pub fn into_candidates(mut self) -> Vec<(f32, u32)> {
        self.cut();
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k_and_the_ties_at_the_kth() {
        let mut top = TopK::new(3, f32::NEG_INFINITY);
        for (i, s) in [0.1, 0.9, 0.5, 0.7, 0.7, 0.2, 0.8].iter().enumerate() {
            top.offer(*s, i as u32);
        }
        for i in 0..200 {
            top.offer(0.0, 100 + i);
        }
        let mut got = top.into_candidates();
        got.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(got, vec![(0.9, 1), (0.8, 6), (0.7, 3), (0.7, 4)]);

        let mut floor = TopK::new(5, 0.6);
        [0.5, 0.6, 0.95]
            .iter()
            .enumerate()
            .for_each(|(i, s)| floor.offer(*s, i as u32));
        assert_eq!(floor.into_candidates().len(), 2, "under min_score: dropped");
        let mut none = TopK::new(0, f32::NEG_INFINITY);
        none.offer(1.0, 0);
        assert!(none.into_candidates().is_empty());
    }
}
