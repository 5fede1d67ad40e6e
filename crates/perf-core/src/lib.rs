//! Shared vocabulary of Resync: health, recommendations, lock-free histograms, efficiency scores.
