//! The engine: what to change (a [`Plan`] from desired and actual resources) and how to run
//! the changes ([`execute`]: a dependency graph with bounded concurrency, a timeout per
//! attempt and retries with backoff). It knows nothing about AWS: the provider supplies the
//! actual resources, which attributes force a replacement, and the calls.

mod document;
mod exec;
mod plan;
pub mod rolling;
pub mod skew;

pub use document::{
    AddonDocument, ChangeDocument, Counts, FieldDocument, Fingerprint, HeldDocument, LeftDocument,
    PlanDocument, FORMAT_VERSION,
};
pub use exec::{
    critical_path, critical_path_time, critical_path_weighted, execute, Event, ExecError,
    ExecOptions, Retryable, Summary, Task, TimedOut,
};
pub use plan::{
    diff, sensitive, Action, AddonChange, Change, FieldChange, Held, Hold, Left, Observed, Plan,
    Schema,
};
