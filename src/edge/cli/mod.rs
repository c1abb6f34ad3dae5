//! The command line: `serve` runs the controller; `validate`, `render` and `plan` work offline
//! on a checkout; `status`, `sync`, `rollback`, `pause` and `resume` talk to a running server.
//!
//! [`args`] parses, [`client`] speaks the API, [`commands`] runs each command. Errors are one
//! clear sentence on stderr and a non-zero exit; `--json` prints machine output.

/// `print!` to stdout that ends the process quietly, with the shell's code for SIGPIPE, when
/// stdout is a closed pipe (`gitmoxi plan | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::edge::cli::write_stdout(format_args!($($arg)*), false) };
}

/// `println!` to stdout, likewise.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::edge::cli::write_stdout(format_args!($($arg)*), true) };
}

pub mod args;
pub mod client;
pub mod commands;
pub mod table;

pub use args::{Cli, Command, Remote, ServeArgs};
pub use commands::run;

/// Writes to stdout; a reader that went away ends the process (exit 141, as after SIGPIPE).
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written.and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}
