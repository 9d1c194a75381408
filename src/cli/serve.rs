//! `sirius serve`: run the server.

use std::net::SocketAddr;
use std::path::Path;

use clap::Args;

use super::Outcome;
use crate::bridge::HubConfig;
use crate::server::{self, ServeConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (bridges connect to port 5002).
    #[arg(long, env = "SIRIUS_LISTEN", default_value = "0.0.0.0:5002")]
    pub listen: SocketAddr,
}

pub fn run(args: ServeArgs, db: &Path) -> anyhow::Result<Outcome> {
    let config = ServeConfig {
        listen: args.listen,
        db: db.to_path_buf(),
        hub: HubConfig::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(server::run(config))?;
    Ok(Outcome::AllValid)
}
