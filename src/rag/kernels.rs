//! The arithmetic of vector search: dot products over `f32` coordinates and `int8` codes,
//! compiled for the widest vector instructions the CPU has, chosen at run time.
//!
//! The release build targets baseline x86-64 so the one binary runs on any x86-64 server, and
//! on baseline (SSE2) instructions an `int8` dot product widens and multiplies eight lanes at a
//! time. `pulp` compiles each kernel again for AVX2 and AVX-512 and picks one per call from a
//! cached CPU check; its dispatch holds the one `unsafe` call that target features need, so
//! this crate stays free of unsafe code. The kernels are plain lane-wise loops that the
//! compiler vectorises for whichever instructions it is compiling for.
//!
//! Wider instructions alone did not make a graph build faster (measured: the same 3,700–3,900
//! vectors/s at 100k): it waits on memory, one scattered row per distance. The batch forms
//! score all of a node's links in one dispatch and prefetch every row first; with that, and
//! the graph's flat bottom layer, the same build ran at 5,700 vectors/s.

use std::sync::LazyLock;

/// The CPU's instruction sets, detected once.
static ARCH: LazyLock<pulp::Arch> = LazyLock::new(pulp::Arch::new);

/// One kernel call, to run under the detected instruction set. An implementation's `run` is
/// `#[inline(always)]`, as are the loops it calls, so all of it is compiled inside pulp's
/// function for that instruction set. (A closure would not do: the compiler declines to inline
/// one of this size, and it then runs on baseline instructions behind the dispatch.)
trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

struct Vectorised<K>(K);

impl<K: Kernel> pulp::WithSimd for Vectorised<K> {
    type Output = K::Output;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> K::Output {
        self.0.run()
    }
}

fn vectorised<K: Kernel>(kernel: K) -> K::Output {
    ARCH.dispatch(Vectorised(kernel))
}

/// Ask the CPU to start loading `row` into cache. The batch kernels score a node's links,
/// rows scattered over the whole graph, so nearly every row is a cache miss; requesting all of
/// them before scoring the first overlaps those misses instead of waiting on each in turn.
#[inline(always)]
pub fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse) = *SSE {
        let start = row.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(row)).step_by(64) {
            sse._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.wrapping_add(offset));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// [`prefetch`] each of rows `ids` of `rows` (`width` values per row).
#[inline(always)]
fn prefetch_rows<T>(rows: &[T], width: usize, ids: &[u32]) {
    for &id in ids {
        let start = id as usize * width;
        prefetch(&rows[start..start + width]);
    }
}

/// The prefetch instruction's token (part of every x86-64 CPU, but `core::arch` wants it
/// checked before it is called outside `unsafe`).
#[cfg(target_arch = "x86_64")]
static SSE: LazyLock<Option<pulp::core_arch::x86::Sse>> = LazyLock::new(pulp::core_arch::x86::Sse::try_new);

/// Independent partial sums per kernel: one running sum would serialise every addition, and
/// 32 lanes of `i32` or `f32` sums fill two AVX-512 registers.
const LANES: usize = 32;

#[inline(always)]
fn dot_f32_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (whole_a, whole_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = whole_a.remainder().iter().zip(whole_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in whole_a.zip(whole_b) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Widened to `i32` per lane, so no sum can overflow for codes within [-127, 127] below 2^17
/// dimensions. (Compiled for AVX-512, the main loop sign-extends 16 codes to `i32` lanes and
/// multiplies them with `vpmulld`, as `objdump` shows; the row's load, not the multiply, is
/// what a graph build waits on.)
#[inline(always)]
fn dot_i8_lanes(a: &[i8], b: &[i8]) -> i32 {
    let mut sums = [0i32; LANES];
    let (whole_a, whole_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 =
        whole_a.remainder().iter().zip(whole_b.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    for (x, y) in whole_a.zip(whole_b) {
        for lane in 0..LANES {
            sums[lane] += i32::from(x[lane]) * i32::from(y[lane]);
        }
    }
    sums.iter().sum::<i32>() + tail
}

#[inline(always)]
fn dot_f32_i8_lanes(a: &[f32], b: &[i8]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (whole_a, whole_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = whole_a.remainder().iter().zip(whole_b.remainder()).map(|(x, y)| x * f32::from(*y)).sum();
    for (x, y) in whole_a.zip(whole_b) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * f32::from(y[lane]);
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// A kernel over one pair of vectors, calling its loop directly: through a closure or a
/// function pointer the compiler leaves the loop out of line, compiled for baseline.
macro_rules! pair_kernel {
    ($(#[$doc:meta])* $name:ident, $kernel:ident($a:ty, $b:ty) -> $out:ty, $lanes:ident) => {
        struct $kernel<'a>(&'a [$a], &'a [$b]);

        impl Kernel for $kernel<'_> {
            type Output = $out;

            #[inline(always)]
            fn run(self) -> $out {
                $lanes(self.0, self.1)
            }
        }

        $(#[$doc])*
        pub fn $name(a: &[$a], b: &[$b]) -> $out {
            vectorised($kernel(a, b))
        }
    };
}

pair_kernel!(dot, Dot(f32, f32) -> f32, dot_f32_lanes);
pair_kernel!(dot_i8, DotI8(i8, i8) -> i32, dot_i8_lanes);
pair_kernel!(
    /// A full-precision query against a code: exact up to the code's own rounding.
    dot_f32_i8,
    DotF32I8(f32, i8) -> f32,
    dot_f32_i8_lanes
);

/// What the kernels score: `f32` coordinates, or `int8` codes. `dot` pairs two rows of the
/// same kind (the batch kernel); `against_full` scores a full-precision query (the scan).
trait Coordinate: Sized {
    fn dot(a: &[Self], b: &[Self]) -> f32;
    fn against_full(query: &[f32], row: &[Self]) -> f32;
}

impl Coordinate for f32 {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        dot_f32_lanes(a, b)
    }

    #[inline(always)]
    fn against_full(query: &[f32], row: &[f32]) -> f32 {
        dot_f32_lanes(query, row)
    }
}

impl Coordinate for i8 {
    #[inline(always)]
    fn dot(a: &[i8], b: &[i8]) -> f32 {
        dot_i8_lanes(a, b) as f32
    }

    #[inline(always)]
    fn against_full(query: &[f32], row: &[i8]) -> f32 {
        dot_f32_i8_lanes(query, row)
    }
}

/// `query` against rows `ids` of `rows`; with `int8` codes, times the query's scale and each
/// row's (`scales`).
struct Similarities<'a, T> {
    query: &'a [T],
    rows: &'a [T],
    scales: Option<(f32, &'a [f32])>,
    ids: &'a [u32],
    out: &'a mut Vec<f32>,
}

impl<T: Coordinate> Kernel for Similarities<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let width = self.query.len();
        prefetch_rows(self.rows, width, self.ids);
        if let Some((_, scales)) = self.scales {
            prefetch_rows(scales, 1, self.ids);
        }
        for &id in self.ids {
            let start = id as usize * width;
            let dot = T::dot(self.query, &self.rows[start..start + width]);
            self.out.push(match self.scales {
                Some((query_scale, scales)) => dot * query_scale * scales[id as usize],
                None => dot,
            });
        }
    }
}

/// The similarity of `query` to row `id` of `rows` (`query.len()` values per row) for each of
/// `ids`, appended to `out`.
pub fn similarities_f32(query: &[f32], rows: &[f32], ids: &[u32], out: &mut Vec<f32>) {
    vectorised(Similarities { query, rows, scales: None, ids, out })
}

/// The `int8` form of [`similarities_f32`]: codes times their scales (`v ≈ code * scale`).
pub fn similarities_i8(query: &[i8], query_scale: f32, rows: &[i8], scales: &[f32], ids: &[u32], out: &mut Vec<f32>) {
    vectorised(Similarities { query, rows, scales: Some((query_scale, scales)), ids, out })
}

/// `query` against every row of `rows` in order; with codes, times each row's scale. The
/// rows are contiguous, so the CPU's own prefetcher streams them and no hint is needed.
struct Scan<'a, T> {
    query: &'a [f32],
    rows: &'a [T],
    scales: Option<&'a [f32]>,
    out: &'a mut Vec<f32>,
}

impl<T: Coordinate> Kernel for Scan<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let width = self.query.len();
        if width == 0 {
            return;
        }
        for (i, row) in self.rows.chunks_exact(width).enumerate() {
            let similarity = T::against_full(self.query, row);
            self.out.push(match self.scales {
                Some(scales) => similarity * scales[i],
                None => similarity,
            });
        }
    }
}

/// The similarity of `query` to each row of `rows` (`query.len()` values per row), appended
/// to `out`: an exact scan in one dispatch.
pub fn scan_f32(query: &[f32], rows: &[f32], out: &mut Vec<f32>) {
    vectorised(Scan { query, rows, scales: None, out })
}

/// [`scan_f32`] over `int8` codes, each row times its scale (`v ≈ code * scale`).
pub fn scan_f32_i8(query: &[f32], codes: &[i8], scales: &[f32], out: &mut Vec<f32>) {
    vectorised(Scan { query, rows: codes, scales: Some(scales), out })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every width around the lane count, against sums written out plainly.
    #[test]
    fn the_kernels_match_the_plain_sums() {
        for len in [0, 1, 7, 31, 32, 33, 64, 100, 384, 385] {
            let a: Vec<i8> = (0..len).map(|i| ((i * 37 + 11) % 255) as i8).map(|x| x.max(-127)).collect();
            let b: Vec<i8> = (0..len).map(|i| ((i * 91 + 5) % 255) as i8).map(|x| x.max(-127)).collect();
            let plain: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            assert_eq!(dot_i8(&a, &b), plain, "{len}");
            let fa: Vec<f32> = a.iter().map(|x| f32::from(*x) / 127.0).collect();
            let fb: Vec<f32> = b.iter().map(|x| f32::from(*x) / 127.0).collect();
            let plain_f32 = plain as f32 / 127.0 / 127.0;
            assert!((dot(&fa, &fb) - plain_f32).abs() < 1e-3 * plain_f32.abs().max(1.0), "{len}");
            let mixed = plain as f32 / 127.0;
            assert!((dot_f32_i8(&fa, &b) - mixed).abs() < 1e-3 * mixed.abs().max(1.0), "{len}");
        }
    }

    #[test]
    fn the_batch_forms_score_the_rows_they_are_given() {
        let width = 40;
        let rows: Vec<i8> = (0..5 * width).map(|i| ((i * 13) % 200) as i8).map(|x| x.max(-127)).collect();
        let scales = [0.5, 0.25, 2.0, 1.0, 4.0];
        let full: Vec<f32> = rows.iter().map(|x| f32::from(*x)).collect();
        let query = width..2 * width;
        let ids = [4u32, 0, 2];
        let (mut from_codes, mut from_full) = (vec![9.0], Vec::new());
        similarities_i8(&rows[query.clone()], 3.0, &rows, &scales, &ids, &mut from_codes);
        similarities_f32(&full[query.clone()], &full, &ids, &mut from_full);
        assert_eq!(from_codes.len(), 4, "appended after what was there");
        for (k, &id) in ids.iter().enumerate() {
            let row = id as usize * width..(id as usize + 1) * width;
            let expected = dot_i8(&rows[query.clone()], &rows[row.clone()]) as f32 * 3.0 * scales[id as usize];
            assert_eq!(from_codes[k + 1], expected);
            assert_eq!(from_full[k], dot(&full[query.clone()], &full[row]));
        }
        // The scans: every row in order, the same sums as the pair kernels.
        let probe = &full[query.clone()];
        let (mut scanned_codes, mut scanned_full) = (Vec::new(), Vec::new());
        scan_f32_i8(probe, &rows, &scales, &mut scanned_codes);
        scan_f32(probe, &full, &mut scanned_full);
        assert_eq!((scanned_codes.len(), scanned_full.len()), (5, 5));
        for id in 0..5 {
            let row = id * width..(id + 1) * width;
            assert_eq!(scanned_codes[id], dot_f32_i8(probe, &rows[row.clone()]) * scales[id]);
            assert_eq!(scanned_full[id], dot(probe, &full[row]));
        }
    }
}
