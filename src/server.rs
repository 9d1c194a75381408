//! `sirius serve`: open the store, listen, accept bridges and browsers,
//! sweep presence, and shut down gracefully on SIGINT/SIGTERM — bridge
//! websockets get a close frame and in-flight writes finish.
//!
//! Every client is treated as hostile: at most
//! [`HttpLimits::max_connections`] connections are open at once (more are
//! answered 503 and closed at once, so live bridges keep working), one
//! address may hold at most [`HttpLimits::max_per_ip`] of them (loopback
//! excepted: a reverse proxy on the same machine is one address), a request
//! must send its headers within [`HttpLimits::header_timeout`] and an idle
//! keep-alive connection is closed after the same time (hyper's header read
//! timeout covers the wait for the next request).

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
use crate::store::{Db, Store};
use crate::web::{self, AppState};

/// Limits on what HTTP clients can make the server hold.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections open at once (bridges included).
    pub max_connections: usize,
    /// Connections one address may hold (loopback addresses are exempt).
    pub max_per_ip: usize,
    /// Time to send a request's headers, and to start the next request on
    /// a kept-alive connection.
    pub header_timeout: Duration,
    /// Time for a whole request body to arrive (a print of up to 10 MiB).
    pub body_deadline: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 4096,
            max_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            body_deadline: Duration::from_secs(30),
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub hub: HubConfig,
    pub printing: PrintingConfig,
    pub render: RenderConfig,
    pub http: HttpLimits,
    /// How people reach this server (`SIRIUS_PUBLIC_URL`), for examples.
    pub public_url: Option<String>,
    /// The web app: sign-up policy, trusted proxies, templates.
    pub web: crate::web::app::WebConfig,
    /// `/metrics` answers other addresses than loopback.
    pub metrics_public: bool,
    /// Announce the web app on the local network ([`crate::mdns`]).
    pub mdns: bool,
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
            http: HttpLimits::default(),
            public_url: None,
            web: Default::default(),
            metrics_public: false,
            mdns: true,
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
///
/// When `GLIBC_TUNABLES` is set, the allocator is left as it says: whoever
/// set it knows what they want.
pub fn return_big_buffers_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only sets allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Opens the store, binds the listener and starts serving in the
/// background.
pub async fn start(config: ServeConfig) -> anyhow::Result<RunningServer> {
    raise_open_files_limit();
    return_big_buffers_promptly();
    // One server per database, and no restore under it (crate::lockfile).
    let lock = crate::lockfile::DbLock::try_acquire(&config.db)?;
    let path = config.db.clone();
    let hub_config = config.hub.clone();
    let hub = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path)?;
        Hub::new(Db::new(Arc::new(store)), hub_config)
    })
    .await?
    .with_context(|| format!("could not open the database {}", config.db.display()))?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "could not listen on {} (is another server running there? choose another with --listen)",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let renderer = Arc::new(Renderer::new(config.render.clone()));
    if config.render.fonts_dir.is_some() {
        // Fonts the admin added: read them now, so a bad file is named in
        // the log at start. The embedded ones wait for the first render.
        renderer.load_fonts();
    }
    let printing = Printing::new(Arc::clone(&hub), renderer, config.printing.clone());
    let state = Arc::new(AppState {
        db: hub.db.clone(),
        hub: Arc::clone(&hub),
        printing: Arc::clone(&printing),
        port: addr.port(),
        public_url: config.public_url.clone(),
        print_key_limiter: Default::default(),
        api_limiter: Default::default(),
        app: crate::web::app::App::new(config.web.clone()),
        print_dedupe: Default::default(),
        body_deadline: config.http.body_deadline,
        metrics_public: config.metrics_public,
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let http = config.http.clone();
    let queue = printing.start(shutdown_rx.clone());
    let announcement = config
        .mdns
        .then(|| crate::mdns::announce(config.listen.ip(), addr.port()))
        .flatten();
    let task = tokio::spawn(async move {
        let _lock = lock;
        serve(listener, state, http, shutdown_rx).await;
        let _ = queue.await;
        if let Some(a) = announcement {
            let _ = tokio::task::spawn_blocking(move || a.stop()).await;
        }
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

async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let hub = Arc::clone(&state.hub);
    let gate = Arc::new(ConnectionGate::new(&limits));
    // HTTP connections, so shutdown can let in-flight requests finish.
    let mut connections = tokio::task::JoinSet::new();
    let sweeper = {
        let hub = Arc::clone(&hub);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.config.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut cleanup = tokio::time::interval(hub.config.cleanup_interval);
            cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    // Quick: memory only, writes go to the writer thread.
                    _ = tick.tick() => hub.sweep(),
                    _ = cleanup.tick() => hub.forget_old(),
                    _ = shutdown.changed() => break,
                }
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
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
                let Some(pass) = gate.enter(remote.ip()) else {
                    hub.stats.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    refuse(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = service_fn(move |req| web::handle(Arc::clone(&state), req, remote));
                let io = TokioIo::new(GatedStream { stream, _pass: pass });
                let conn = builder.serve_connection(io, service).with_upgrades();
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
    hub.flush(true);
    if tokio::time::timeout(Duration::from_secs(10), state.db.flush())
        .await
        .is_err()
    {
        tracing::warn!("the database did not finish its writes within 10 s");
    }
    tracing::info!("stopped");
}

/// Answers a connection over the limits with a short 503 (if its socket
/// takes it at once) and closes it.
fn refuse(stream: tokio::net::TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 47\r\nConnection: close\r\nRetry-After: 10\r\n\r\ntoo many connections are open; try again later\n";
    let _ = stream.try_write(BUSY);
    drop(stream);
}

/// Counts open connections, in all and per address.
struct ConnectionGate {
    total: Arc<tokio::sync::Semaphore>,
    per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    max_per_ip: usize,
}

/// One open connection's place; given back when the connection (or the
/// websocket it became) closes.
struct Pass {
    _total: tokio::sync::OwnedSemaphorePermit,
    ip: Option<std::net::IpAddr>,
    per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl ConnectionGate {
    fn new(limits: &HttpLimits) -> ConnectionGate {
        ConnectionGate {
            total: Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1))),
            per_ip: Default::default(),
            max_per_ip: limits.max_per_ip.max(1),
        }
    }

    fn enter(&self, ip: std::net::IpAddr) -> Option<Pass> {
        let total = Arc::clone(&self.total).try_acquire_owned().ok()?;
        let ip = (!ip.is_loopback()).then_some(ip);
        if let Some(ip) = ip {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_default();
            if *n >= self.max_per_ip {
                return None;
            }
            *n += 1;
        }
        Some(Pass {
            _total: total,
            ip,
            per_ip: Arc::clone(&self.per_ip),
        })
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

/// A TCP stream holding its connection's [`Pass`]: the place is given back
/// when the stream is dropped — after the websocket, if it became one.
struct GatedStream {
    stream: tokio::net::TcpStream,
    _pass: Pass,
}

impl tokio::io::AsyncRead for GatedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for GatedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let server = start(config).await?;
    let systemd = crate::service::ServiceNotifier::ready(Arc::clone(&server.hub));
    wait_for_signal().await;
    tracing::info!("signal received");
    systemd.stopping();
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
