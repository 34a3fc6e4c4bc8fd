//! aiopoll side by side with its peers.
//!
//! The benchmarks are in `benches/peers/` (`cargo bench -p aiopoll-benches`,
//! or `cargo xtask bench` for the table with ratios and instruction counts).
//! This library holds nothing the benchmarks need; it exists so that the
//! package has a library target for `cargo test --workspace` and `cargo doc`.
#![no_std]
