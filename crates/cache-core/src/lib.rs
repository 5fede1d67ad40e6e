//! A bounded, instrumented async cache on moka that measures itself and predicts the effect of a resize.
