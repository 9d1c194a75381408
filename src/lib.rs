//! Sirius: a self-hosted server for BERG's Little Printer.
//!
//! Layers, from the bottom: [`protocol`] and [`raster`] are pure (no I/O);
//! [`store`] keeps what lasts across restarts in one SQLite file; the bridge
//! server, printing and the web app build on them in later modules; [`cli`]
//! is the thin command-line edge.

pub mod cli;
pub mod emulator;
pub mod protocol;
pub mod raster;
pub mod store;
