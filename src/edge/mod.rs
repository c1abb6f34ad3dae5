//! Floor 4, edge: what users and other programs call (HTTP API, web page, webhooks, the CLI) and the wiring that starts everything (`app`).
//!
//! Imports go down only: a file here uses its own floor and those below it
//! (`scripts/check_floors.py`, in `make test`).

pub mod app;
pub mod cli;
pub mod http;
