//! Sirius: a self-hosted server for BERG's Little Printer.
//!
//! Layers, from the bottom: [`protocol`] and [`raster`] are pure (no I/O);
//! the bridge server, printing, the web app and the store build on them in
//! later modules; [`cli`] is the thin command-line edge.

pub mod cli;
pub mod emulator;
pub mod protocol;
pub mod raster;
