//! Floor 2, integrations: where gitmoxi reports to (notifications, forge commit statuses and comments, Slack messages, a language model); built on io.
//!
//! Imports go down only: a file here uses its own floor and those below it
//! (`scripts/check_floors.py`, in `make test`).

pub mod forge;
pub mod llm;
pub mod notify;
pub mod slack;
