//! Sampling parameters and processors (in progress).
#![forbid(unsafe_code)]
