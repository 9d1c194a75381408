//! `sirius serve`: open the store, listen, accept bridges and browsers,
//! sweep presence, and shut down gracefully on SIGINT/SIGTERM — bridge
//! websockets get a close frame and in-flight writes finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bridge::{Hub, HubConfig};
use crate::compose::{RenderConfig, Renderer};
use crate::printing::{Printing, PrintingConfig};
use crate::store::Store;
use crate::web::{self, AppState};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub hub: HubConfig,
    pub printing: PrintingConfig,
    pub render: RenderConfig,
    /// How people reach this server (`SIRIUS_PUBLIC_URL`), for examples.
    pub public_url: Option<String>,
    /// The web app: sign-up policy, trusted proxies, templates.
    pub web: crate::web::app::WebConfig,
}

impl ServeConfig {
    /// The defaults, listening on `listen` with the database at `db`.
    pub fn new(listen: SocketAddr, db: PathBuf) -> ServeConfig {
        ServeConfig {
            listen,
            db,
            hub: HubConfig::default(),
            printing: PrintingConfig::default(),
            render: RenderConfig::default(),
            public_url: None,
            web: Default::default(),
        }
    }
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub printing: Arc<Printing>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, closes every bridge with a close frame, lets
    /// in-flight writes finish, writes last-heard times, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it does not, unless told).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Raises the soft open-files limit to the hard limit: thousands of bridges
/// are thousands of sockets.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(from = old, to = lim.rlim_max, "raised the open files limit");
            }
        }
    }
}

/// Asks glibc's allocator to hand big buffers (decoded photos, uploads)
/// straight back to the system when freed, instead of keeping them in its
/// arenas: a burst of picture messages then leaves no lasting RSS behind,
/// and peaks stay lower. (Other C libraries already behave so.)
pub fn return_big_buffers_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Opens the store, binds the listener and starts serving in the
/// background.
pub async fn start(config: ServeConfig) -> anyhow::Result<RunningServer> {
    raise_open_files_limit();
    return_big_buffers_promptly();
    let db = config.db.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&db))
        .await?
        .with_context(|| format!("could not open the database {}", config.db.display()))?;
    let hub = Hub::new(Arc::new(store), config.hub.clone())?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "could not listen on {} (is another server running there? choose another with --listen)",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let renderer = Arc::new(Renderer::new(config.render.clone()));
    let printing = Printing::new(Arc::clone(&hub), renderer, config.printing.clone());
    let state = Arc::new(AppState {
        db: crate::store::Db::new(Arc::clone(&hub.store)),
        hub: Arc::clone(&hub),
        printing: Arc::clone(&printing),
        port: addr.port(),
        public_url: config.public_url.clone(),
        print_key_limiter: Default::default(),
        app: crate::web::app::App::new(config.web.clone()),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let queue = printing.start(shutdown_rx.clone());
    let task = tokio::spawn(async move {
        serve(listener, state, shutdown_rx).await;
        let _ = queue.await;
    });
    tracing::info!(%addr, db = %config.db.display(), "Sirius is listening; point bridges at ws://THIS-HOST:{}/api/v1/connection", addr.port());
    Ok(RunningServer {
        addr,
        hub,
        printing,
        shutdown: shutdown_tx,
        task,
    })
}

async fn serve(listener: TcpListener, state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let hub = Arc::clone(&state.hub);
    // HTTP connections, so shutdown can let in-flight requests finish.
    let mut connections = tokio::task::JoinSet::new();
    let sweeper = {
        let hub = Arc::clone(&hub);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.config.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let hub = Arc::clone(&hub);
                        let _ = tokio::task::spawn_blocking(move || hub.sweep()).await;
                    }
                    _ = shutdown.changed() => break,
                }
            }
        })
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, go on.
                        tracing::warn!("could not accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = service_fn(move |req| web::handle(Arc::clone(&state), req, remote));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                let mut stop = shutdown.clone();
                connections.spawn(async move {
                    tokio::pin!(conn);
                    let result = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = stop.changed() => {
                            // Finish the request in flight, then close.
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(%remote, "connection error: {e}");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(
        bridges = hub.live_sessions(),
        "shutting down: closing bridge connections"
    );
    hub.close_all("server shutting down");
    if !hub.wait_sessions_ended(Duration::from_secs(5)).await {
        tracing::warn!(
            left = hub.live_sessions(),
            "some bridge connections did not close within 5 s"
        );
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .is_err()
    {
        tracing::warn!("some HTTP requests did not finish within 5 s");
    }
    let _ = sweeper.await;
    let flush_hub = Arc::clone(&hub);
    let _ = tokio::task::spawn_blocking(move || flush_hub.flush(true)).await;
    tracing::info!("stopped");
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let server = start(config).await?;
    wait_for_signal().await;
    tracing::info!("signal received");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
