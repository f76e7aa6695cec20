//! The baseline relay: the ceiling tlschat is compared against. What a
//! straightforward tokio + tokio-rustls chat relay looks like, with no
//! protocol and no bookkeeping: a task per connection, every line goes to
//! every client (the sender included) through a bounded queue per client
//! and a writer task that coalesces what is queued into one write. A
//! client whose queue is full is dropped.
//!
//! It uses tlschat's own TLS server configuration (same rustls, same
//! aws-lc-rs provider and key exchange groups, same certificate, same session and 0.5-RTT settings) and the
//! same runtime setup as `tlschat-server` (`Runtime::new()`, the accept
//! loop on a worker), so the difference in a run is the protocol and the
//! bookkeeping. The one thing it adds to "no protocol" is
//! an `OK` line once a connection is registered, so a client knows when
//! lines will reach it.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use tlschat_server_core::certs::CertPaths;

#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// Address to listen on (port 0: any free port, printed at startup).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Lines a client's queue holds before the client is dropped.
    #[arg(long, default_value_t = 2048)]
    pub queue_lines: usize,
}

/// A line longer than this is dropped (tlschat's limit).
const MAX_LINE: usize = 4096;
/// Coalesce up to one TLS record's worth per write.
const BATCH_BYTES: usize = 16 * 1024;

struct Peer {
    tx: mpsc::Sender<Bytes>,
    abort: CancellationToken,
}

#[derive(Default)]
struct Hub {
    next: AtomicU64,
    clients: Mutex<HashMap<u64, Peer>>,
}

impl Hub {
    fn broadcast(&self, line: Bytes) {
        let mut lagging = Vec::new();
        {
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            for (id, peer) in clients.iter() {
                if let Err(mpsc::error::TrySendError::Full(_)) = peer.tx.try_send(line.clone()) {
                    lagging.push(*id);
                }
            }
        }
        for id in lagging {
            if let Some(peer) = self.remove(id) {
                peer.abort.cancel();
            }
        }
    }

    fn remove(&self, id: u64) -> Option<Peer> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }
}

pub fn main(args: BaselineArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("runtime")?;
    // The accept loop on a worker, as tlschat-server runs it: new
    // connections then start on that worker without a cross-thread wake.
    runtime.block_on(async {
        tokio::spawn(serve(args))
            .await
            .context("the accept loop panicked")?
    })
}

async fn serve(args: BaselineArgs) -> Result<()> {
    let cert = tlschat_server_core::certs::load(&CertPaths {
        cert: args.cert.clone(),
        key: args.key.clone(),
    })?;
    let acceptor = TlsAcceptor::from(tlschat_server_core::tls::server_config(&cert)?);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "tlschat-loadgen baseline relay listening on {}",
            listener.local_addr()?
        )?;
        out.flush()?;
    }
    let hub = Arc::new(Hub::default());
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            hub.clone(),
            acceptor.clone(),
            tcp,
            args.queue_lines,
        ));
    }
}

async fn connection(hub: Arc<Hub>, acceptor: TlsAcceptor, tcp: TcpStream, queue: usize) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let (rd, wr) = tokio::io::split(tls);
    let (tx, rx) = mpsc::channel::<Bytes>(queue.max(1));
    let abort = CancellationToken::new();
    let id = hub.next.fetch_add(1, Ordering::Relaxed);
    let _ = tx.try_send(Bytes::from_static(b"OK\n"));
    hub.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            id,
            Peer {
                tx,
                abort: abort.clone(),
            },
        );
    let writer = tokio::spawn(write_loop(rx, wr, abort.clone()));
    // A naive relay's reader: tokio's default 8 KiB BufReader.
    let mut reader = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        let r = tokio::select! {
            _ = abort.cancelled() => break,
            r = reader.read_until(b'\n', &mut line) => r,
        };
        match r {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') || line.len() > MAX_LINE {
            continue;
        }
        hub.broadcast(Bytes::copy_from_slice(&line));
    }
    // Dropping the queue's sender lets the writer drain it and close.
    drop(hub.remove(id));
    let _ = writer.await;
}

async fn write_loop(
    mut rx: mpsc::Receiver<Bytes>,
    mut wr: tokio::io::WriteHalf<tokio_rustls::server::TlsStream<TcpStream>>,
    abort: CancellationToken,
) {
    let mut batch: Vec<u8> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            _ = abort.cancelled() => return,
            m = rx.recv() => match m {
                Some(b) => b,
                None => break,
            },
        };
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < BATCH_BYTES {
            match rx.try_recv() {
                Ok(b) => batch.extend_from_slice(&b),
                Err(_) => break,
            }
        }
        let r = tokio::select! {
            biased;
            _ = abort.cancelled() => return,
            r = async { wr.write_all(&batch).await?; wr.flush().await } => r,
        };
        if r.is_err() {
            abort.cancel();
            return;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), wr.shutdown()).await;
}
