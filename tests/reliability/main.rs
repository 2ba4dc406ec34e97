//! The reliability proof (docs/RELIABILITY.md), one test binary so DynamoDB Local starts once:
//! the checker's own tests, the fault proxy through the SDK, the fault matrix (part 1),
//! model-based programs (part 2), the soak through the stream trigger (part 3), the bad-input
//! corpus (part 4), the fuzz targets' properties and findings (part 5) and the privacy capture
//! (part 6). Its parts are the files beside this one (cargo's tests/<name>/main.rs layout: the
//! binary is still `reliability`).
//!
//! `cargo test --test reliability` runs the quick slices (fixed seeds); `make reliability` runs
//! the full sizes (RELIABILITY_FULL=1) and collects the figures.

mod support;

// The fuzz targets' properties: one file that the fuzz crate (fuzz/, outside the workspace, built
// by cargo-fuzz) compiles into its targets and this binary into its regression tests.
#[path = "../../fuzz/checks.rs"]
mod fuzz_checks;

mod checker;
mod corpus;
mod faults;
mod fuzz;
mod model;
mod privacy;
mod proxy;
mod soak;
