//! The reliability proof (docs/RELIABILITY.md), one test binary so DynamoDB Local starts once:
//! the checker's own tests, the fault proxy through the SDK, the fault matrix (part 1),
//! model-based programs (part 2), the soak through the stream trigger (part 3), the bad-input
//! corpus (part 4), the fuzz targets' properties and findings (part 5) and the privacy capture
//! (part 6).
//!
//! `cargo test --test reliability` runs the quick slices (fixed seeds); `make reliability` runs
//! the full sizes (RELIABILITY_FULL=1) and collects the figures.

#[path = "reliability/support.rs"]
mod support;

#[path = "../fuzz/checks.rs"]
mod fuzz_checks;

#[path = "reliability/checker.rs"]
mod checker;
#[path = "reliability/corpus.rs"]
mod corpus;
#[path = "reliability/faults.rs"]
mod faults;
#[path = "reliability/fuzz.rs"]
mod fuzz;
#[path = "reliability/model.rs"]
mod model;
#[path = "reliability/privacy.rs"]
mod privacy;
#[path = "reliability/proxy.rs"]
mod proxy;
#[path = "reliability/soak.rs"]
mod soak;
