//! moto tests (see below).
