//! The resync server library.
