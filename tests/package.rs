//! The Debian package, built and checked as a self-hoster gets it:
//! `packaging/check` packages this test build of sirius with cargo-deb and
//! checks its files, dependencies, lintian, the systemd units (verify and
//! an exposure of at most 1.5), and an install, upgrade, remove and purge
//! in a throwaway Debian root that runs the maintainer scripts. It needs
//! root on Debian (CI's image); elsewhere it fails saying so.

use std::process::Command;

#[test]
fn the_debian_package_builds_installs_and_purges_cleanly() {
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/check");
    let status = Command::new(check)
        .args(["--binary", env!("CARGO_BIN_EXE_sirius")])
        .status()
        .unwrap_or_else(|e| panic!("could not run {check}: {e}"));
    assert!(
        status.success(),
        "packaging/check failed ({status}); its output above says which check and why"
    );
}
