//! Evaluation (in progress).
