//! Histogram benches (placeholder until written).
fn main() {}
