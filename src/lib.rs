//! Sirius: a self-hosted server for BERG's Little Printer.
//!
//! Layers, from the bottom: [`protocol`] and [`raster`] are pure (no I/O);
//! [`store`] keeps what lasts across restarts in one SQLite file; [`bridge`]
//! owns live bridge connections and the presence of printers; [`web`]
//! answers HTTP; [`server`] wires them together for `sirius serve`;
//! [`service`] reports to systemd (ready, status, watchdog);
//! [`emulator`] plays bridges and printers for tests and load; [`cli`] is
//! the thin command-line edge.

pub mod backup;
pub mod bridge;
pub mod cli;
pub mod compose;
pub mod emulator;
pub mod lockfile;
pub mod mdns;
pub mod metrics;
pub mod printing;
pub mod protocol;
pub mod raster;
pub mod server;
pub mod service;
pub mod store;
pub mod web;
