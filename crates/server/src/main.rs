//! The `resync` binary.
fn main() {}
