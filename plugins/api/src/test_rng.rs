//! A small deterministic number generator for the property tests.

/// Each call gives a number below its argument, from a sequence fixed by `seed` (not zero).
pub fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}
