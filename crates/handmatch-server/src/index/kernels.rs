//! Dot products of a query with stored rows (f32, or f16 to halve the memory a scan reads),
//! compiled for AVX2 with FMA and F16C and picked once at run time when the CPU has them;
//! elsewhere the portable eight-lane sum of `handmatch_core::template::dot`. (A 512-bit
//! build of the same sums was slower on this project's AVX-512 machines, 28 against 40
//! queries/s over 1,000,000 × 256 rows, so there is none.) Every level computes the same sum in another order, so
//! results agree to rounding (tested against a plain f64 sum).

use std::sync::OnceLock;

use half::f16;
use handmatch_core::template::dot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    Avx2,
    Portable,
}

/// The level this CPU runs (`HANDMATCH_SIMD=portable` forces the portable code, to compare
/// on one machine).
pub fn simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if std::env::var("HANDMATCH_SIMD").as_deref() == Ok("portable") {
            return SimdLevel::Portable;
        }
        detect()
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> SimdLevel {
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    if avx2 {
        SimdLevel::Avx2
    } else {
        SimdLevel::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> SimdLevel {
    SimdLevel::Portable
}

/// `query · row` over their common length.
pub fn dot_f32(query: &[f32], row: &[f32]) -> f32 {
    match simd_level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected on this CPU.
        SimdLevel::Avx2 => unsafe { x86::dot_f32_avx2(query, row) },
        _ => dot(query, row),
    }
}

/// `query · row` for a row stored in f16.
pub fn dot_f16(query: &[f32], row: &[f16]) -> f32 {
    match simd_level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected on this CPU.
        SimdLevel::Avx2 => unsafe { x86::dot_f16_avx2(query, row) },
        _ => query.iter().zip(row).map(|(q, r)| q * r.to_f32()).sum(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Sixteen independent fused sums: with AVX2 and FMA enabled around it, the compiler
    /// turns them into two registers of FMAs.
    #[inline(always)]
    fn lanes(a: &[f32], b: &[f32]) -> f32 {
        const LANES: usize = 16;
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; LANES];
        let (ab, bb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = ab
            .remainder()
            .iter()
            .zip(bb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ab.zip(bb) {
            for i in 0..LANES {
                acc[i] = x[i].mul_add(y[i], acc[i]);
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        lanes(a, b)
    }

    /// Eight f16 values at a time widened by F16C, four accumulators to hide FMA latency.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(query: &[f32], row: &[f16]) -> f32 {
        let n = query.len().min(row.len());
        let (q, r) = (query.as_ptr(), row.as_ptr() as *const u16);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, a) in acc.iter_mut().enumerate() {
                let at = i + 8 * j;
                // SAFETY: at + 8 <= n, within both slices.
                let wide = _mm256_cvtph_ps(_mm_loadu_si128(r.add(at) as *const __m128i));
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(at)), wide, *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            let wide = _mm256_cvtph_ps(_mm_loadu_si128(r.add(i) as *const __m128i));
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), wide, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        let tail: f32 = query[i..n]
            .iter()
            .zip(&row[i..n])
            .map(|(x, y)| x * y.to_f32())
            .sum();
        lanes.iter().sum::<f32>() + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Each x86 kernel this CPU can run, whichever level the dispatch picks: (name, dot,
    /// whether it read the f16 row).
    #[cfg(target_arch = "x86_64")]
    fn every_level(a: &[f32], b: &[f32], halves: &[f16]) -> Vec<(&'static str, f32, bool)> {
        let mut out = Vec::new();
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        if avx2 {
            // SAFETY: the features were just detected.
            unsafe {
                out.push(("avx2 f32", x86::dot_f32_avx2(a, b), false));
                out.push(("avx2 f16", x86::dot_f16_avx2(a, halves), true));
            }
        }
        out.push(("portable f32", dot(a, b), false));
        out
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn every_level(a: &[f32], b: &[f32], _: &[f16]) -> Vec<(&'static str, f32, bool)> {
        vec![("portable f32", dot(a, b), false)]
    }

    #[test]
    fn every_length_agrees_with_a_plain_f64_sum() {
        for n in [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 255, 256, 257, 768] {
            let (a, b) = (values(n, 1), values(n, 7));
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let got = f64::from(dot_f32(&a, &b));
            assert!(
                (got - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                "f32, length {n}"
            );
            let halves: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
            let exact16: f64 = a
                .iter()
                .zip(&halves)
                .map(|(x, y)| f64::from(*x) * f64::from(y.to_f32()))
                .sum();
            let got16 = f64::from(dot_f16(&a, &halves));
            assert!(
                (got16 - exact16).abs() < 1e-4 * (1.0 + exact16.abs()),
                "f16, length {n}"
            );
            for (level, got, want) in every_level(&a, &b, &halves) {
                let exact = if want { exact16 } else { exact };
                assert!(
                    (f64::from(got) - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                    "{level}, length {n}"
                );
            }
        }
        eprintln!("SIMD level: {:?}", simd_level());
    }
}
