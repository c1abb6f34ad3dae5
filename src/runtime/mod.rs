//! Floor 3, runtime: the controller (run loop, heads owner, reconcile, the one way commands arrive), the source loops, the repositories, the configuration, previews, diagnoses and the pipelines runner.
//!
//! Imports go down only: a file here uses its own floor and those below it
//! (`scripts/check_floors.py`, in `make test`).

pub mod assessments;
pub mod config;
pub mod controller;
pub mod diagnose;
pub mod pipelines;
pub mod preview;
pub mod repos;
pub mod source;
