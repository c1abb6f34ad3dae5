//! Floor 0, base: what every other floor may use and which uses nothing of the crate (locks, the clock, memory figures, the state directory).
//!
//! Imports go down only: a file here uses its own floor and those below it
//! (`scripts/check_floors.py`, in `make test`).

pub mod clock;
pub mod failpoint;
pub mod memory;
pub mod state_dir;
pub mod sync;
