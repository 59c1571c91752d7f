//! A subject's template: the L2-normalised mean of its L2-normalised embeddings, as in the
//! reference study. The service's index and the offline evaluation both use this one
//! definition, so their rankings agree.

/// `v / max(‖v‖, 1e-12)` in place.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// The normalised mean of `embeddings` (each of length `dim`); `None` when there are none.
pub fn mean_template<'a>(
    embeddings: impl IntoIterator<Item = &'a [f32]>,
    dim: usize,
) -> Option<Vec<f32>> {
    let mut sum = vec![0f32; dim];
    let mut n = 0;
    for e in embeddings {
        sum.iter_mut().zip(e).for_each(|(s, x)| *s += x);
        n += 1;
    }
    (n > 0).then(|| {
        l2_normalize(&mut sum);
        sum
    })
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_two_orthogonal_unit_vectors_is_their_bisector() {
        let t = mean_template([&[1.0, 0.0][..], &[0.0, 1.0][..]], 2).unwrap();
        assert!(
            (t[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6 && (t[0] - t[1]).abs() < 1e-7
        );
        assert!(mean_template(std::iter::empty(), 2).is_none());
    }
}
