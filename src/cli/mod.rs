//! The command line: `serve` runs the controller; `validate`, `render` and `plan` work offline
//! on a checkout; `status`, `sync`, `rollback`, `pause` and `resume` talk to a running server.
//!
//! [`args`] parses, [`client`] speaks the API, [`commands`] runs each command. Errors are one
//! clear sentence on stderr and a non-zero exit; `--json` prints machine output.

pub mod args;
pub mod client;
pub mod commands;
pub mod table;

pub use args::{Cli, Command, Remote, ServeArgs};
pub use commands::run;
