//! AWS provider (work in progress).
