//! Bucket layout of [`Histogram`](super::Histogram): log-linear, HdrHistogram style.
//!
//! Values below 64 get a bucket each (exact). Every power of two `[2^m, 2^(m+1))` with `m ≥ 6`
//! is split into 32 equal sub-buckets of width `2^(m-5)`. Because a bucket's lower bound is
//! always at least 32 times its width, any value inside a bucket differs from the bucket's
//! midpoint by at most 1/64 of itself (1.5625 %) and from either bound by less than 1/32
//! (3.125 %). 59 magnitudes × 32 sub-buckets + 32 linear buckets cover all of `u64` in
//! [`BUCKET_COUNT`] buckets.

/// Bits of sub-bucket resolution per power of two: 2^5 = 32 sub-buckets.
const SUB_BUCKET_BITS: u32 = 5;

/// Sub-buckets per power of two.
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;

/// Number of buckets needed to cover every `u64`: 32 linear buckets below 32, then 32 per
/// power of two for magnitudes 5..=63.
pub(crate) const BUCKET_COUNT: usize = SUB_BUCKETS + (64 - SUB_BUCKET_BITS as usize) * SUB_BUCKETS;

/// Index of the bucket holding `value`.
#[inline]
pub(crate) fn index_of(value: u64) -> usize {
    // Position of the highest set bit; `| 1` keeps zero out of the `leading_zeros() == 64` case.
    let magnitude = 63 - (value | 1).leading_zeros();
    let shift = magnitude.saturating_sub(SUB_BUCKET_BITS);
    // `value >> shift` lies in [32, 64) once shift > 0, so consecutive magnitudes tile the range.
    ((shift as usize) << SUB_BUCKET_BITS) + (value >> shift) as usize
}

/// Inclusive lower bound and width of bucket `index` (`index < BUCKET_COUNT`).
#[inline]
fn bounds(index: usize) -> (u64, u64) {
    if index < SUB_BUCKETS {
        return (index as u64, 1);
    }
    let shift = (index >> SUB_BUCKET_BITS) - 1;
    let sub_bucket = (index & (SUB_BUCKETS - 1)) + SUB_BUCKETS;
    ((sub_bucket as u64) << shift, 1 << shift)
}

/// Smallest value that falls into bucket `index`.
#[inline]
pub(crate) fn lower_bound(index: usize) -> u64 {
    bounds(index).0
}

/// Largest value that falls into bucket `index`.
#[inline]
pub(crate) fn upper_bound(index: usize) -> u64 {
    let (low, width) = bounds(index);
    low + (width - 1)
}

/// Value reported for bucket `index`: its midpoint, rounded down.
#[inline]
pub(crate) fn midpoint(index: usize) -> u64 {
    let (low, width) = bounds(index);
    low + (width - 1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_covers_every_u64_without_gaps() {
        assert_eq!(BUCKET_COUNT, 1920);
        assert_eq!(lower_bound(0), 0);
        assert_eq!(upper_bound(BUCKET_COUNT - 1), u64::MAX);
        for index in 1..BUCKET_COUNT {
            assert_eq!(
                lower_bound(index),
                upper_bound(index - 1) + 1,
                "gap before {index}"
            );
        }
    }

    #[test]
    fn every_bound_maps_back_to_its_bucket() {
        for index in 0..BUCKET_COUNT {
            assert_eq!(index_of(lower_bound(index)), index);
            assert_eq!(index_of(upper_bound(index)), index);
            assert_eq!(index_of(midpoint(index)), index);
        }
    }

    #[test]
    fn small_values_are_exact() {
        for value in 0..64 {
            assert_eq!(index_of(value), value as usize);
            assert_eq!(midpoint(index_of(value)), value);
            assert_eq!(upper_bound(index_of(value)), value);
        }
    }

    #[test]
    fn width_is_at_most_one_thirty_second_of_lower_bound() {
        for index in SUB_BUCKETS..BUCKET_COUNT {
            let (low, width) = bounds(index);
            assert!(
                width * 32 <= low,
                "bucket {index}: low {low}, width {width}"
            );
        }
    }
}
