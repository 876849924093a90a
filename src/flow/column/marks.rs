//! Tight loops over a column's values that mark rows: the checks of a batch ask first which
//! rows need a closer look, then look only at those.

use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{Array, PrimitiveArray, StringArray};
use arrow_buffer::NullBuffer;

use super::EXACT_IN_F64;

/// Sets `marks[i]` for each row `i` of `a` that holds a value for which `bad` is true (other
/// marks stay as they are). One pass over the values, which the compiler vectorises when `bad`
/// is plain arithmetic: `bad` is also called on the slots of rows without a value, and its
/// answer for them dropped, so it must not panic on any value.
pub fn mark_values<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, marks: &mut [bool], bad: impl Fn(T::Native) -> bool) {
    // Values that pass are the common case: first a pass that only tells whether any is
    // refused (no branch inside a chunk, no store), then marks only where one is.
    let values: &[T::Native] = a.values();
    if !values.chunks(64).any(|c| c.iter().fold(false, |any, &v| any | bad(v))) {
        return;
    }
    mark_each(values.iter().copied(), a.nulls(), marks, bad)
}

/// Sets `marks[i]` for each row of a string array whose length in bytes `bad` refuses.
pub fn mark_lengths(a: &StringArray, marks: &mut [bool], bad: impl Fn(usize) -> bool) {
    let lengths = a.value_offsets().windows(2).map(|w| (w[1] - w[0]) as usize);
    mark_each(lengths, a.nulls(), marks, bad)
}

fn mark_each<V>(
    values: impl Iterator<Item = V>,
    nulls: Option<&NullBuffer>,
    marks: &mut [bool],
    bad: impl Fn(V) -> bool,
) {
    match nulls {
        None => marks.iter_mut().zip(values).for_each(|(m, v)| *m |= bad(v)),
        Some(nulls) => marks
            .iter_mut()
            .zip(values)
            .zip(nulls.iter())
            .for_each(|((m, v), valid)| *m |= valid & bad(v)),
    }
}

/// The integers `x` of at most 2^53 in magnitude (so that `x as f64` is exact) with
/// `lo <= x <= hi`, as a range to test integers against without converting them: an integer
/// beyond 2^53 is never in it. Empty (`lo > hi`) when there are none.
pub fn exact_integers_within(lo: f64, hi: f64) -> (i64, i64) {
    let exact = EXACT_IN_F64 as f64;
    // Both ends land in ±2^53 (or cross), where a float names an integer exactly.
    let (lo, hi) = (lo.ceil().max(-exact), hi.floor().min(exact));
    if lo > hi || lo.is_nan() || hi.is_nan() {
        return (1, 0);
    }
    (lo as i64, hi as i64)
}

/// The rows that `marks` sets, in order.
pub fn marked(marks: &[bool]) -> impl Iterator<Item = usize> + '_ {
    // Marks are rare: a pass without a branch (which the compiler vectorises) tells whether
    // there is any, before a scan that looks at each.
    let any = marks.iter().fold(false, |any, &m| any | m);
    let scanned = if any { marks } else { &[] };
    scanned.iter().enumerate().filter_map(|(i, m)| m.then_some(i))
}
