//! One task per TCP connection: TLS, the login handshake, then the read
//! loop that turns lines into commands for the hub.
//!
//! ```text
//! accept ─ sniff ─ TLS ─ NICK/PASS ─ register ─┬─ read loop: Frame → Command → Hub
//!          (one deadline from accept)           └─ writer task: Outbox → socket
//! ```
//!
//! A single deadline, taken at TCP accept, covers the TLS handshake, the
//! nickname and the password; nothing closes a handshaking client earlier.
//! After registration the connection is split: this task keeps reading,
//! and [`outbound::run_writer`] owns the write half.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::accounts::verify_password;
use super::bans::canonical_ip;
use super::hub::{Hub, RegisterError};
use super::outbound::{self, Inbox, Outbox};
use super::room::ClientId;
use crate::connection::{Connection, LineReader};
use crate::protocol::{
    check_text, Command, ErrorCode, Frame, Nick, ServerLine, MAX_CLIENT_LINE, MAX_NICK_TRIES,
};
use crate::tls::{self, FirstBytes};

/// How long a refused peer (plaintext, banned, server full) gets to read its
/// one explanatory line before the socket closes.
const LINGER: Duration = Duration::from_secs(1);

/// What every peer task shares.
pub(crate) struct PeerContext {
    pub hub: Hub,
    pub acceptor: TlsAcceptor,
    pub handshake_timeout: Duration,
    pub outbound_queue_bytes: usize,
    pub max_clients: usize,
    /// Cancelled when the server stops: handshaking peers just go.
    pub shutdown: CancellationToken,
}

/// Whether this connection fits under the client limit; holding the permit
/// keeps its place until the task ends.
pub(crate) enum Admission {
    Admitted(Option<OwnedSemaphorePermit>),
    Full,
}

/// Serves one connection from accept to close.
pub(crate) async fn serve(
    ctx: Arc<PeerContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    admission: Admission,
) {
    let deadline = Instant::now() + ctx.handshake_timeout;
    let ip = canonical_ip(peer.ip());

    let tls = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = timeout_at(deadline, accept_tls(&ctx.acceptor, tcp)) => match r {
            Ok(Ok(Some(tls))) => tls,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => return debug!(%peer, "handshake deadline passed during TLS"),
        },
    };
    let mut conn = Connection::new(tls, MAX_CLIENT_LINE);

    let _permit = match admission {
        Admission::Admitted(permit) => permit,
        Admission::Full => {
            let text = format!(
                "the server has reached its limit of {} clients; try again later",
                ctx.max_clients
            );
            let line = ServerLine::Error {
                code: ErrorCode::ServerFull,
                text: &text,
            }
            .encode();
            warn!(%peer, "server full: refusing a client");
            return refuse(conn, &line).await;
        }
    };

    let login = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = timeout_at(deadline, login(&ctx, &mut conn, ip)) => r,
    };
    let (id, outbox, inbox) = match login {
        Ok(Ok(Login::In(id, outbox, inbox))) => (id, outbox, inbox),
        Ok(Ok(Login::Refused(line))) => return refuse(conn, &line).await,
        Ok(Ok(Login::Gone)) => return,
        Ok(Err(e)) => return debug!(%peer, error = %e, "connection failed during login"),
        Err(_) => {
            let secs = ctx.handshake_timeout.as_secs_f32();
            let text = format!("the login was not finished within {secs} s");
            let line = ServerLine::Error {
                code: ErrorCode::Timeout,
                text: &text,
            }
            .encode();
            debug!(%peer, "handshake deadline passed during login");
            return refuse(conn, &line).await;
        }
    };

    let (mut reader, writer) = conn.into_split();
    let writer = tokio::spawn(outbound::run_writer(inbox, writer));
    read_loop(&ctx.hub, id, &outbox, &mut reader).await;
    ctx.hub.disconnected(id);
    outbox.close();
    match writer.await {
        Ok(Err(e)) => debug!(%peer, error = %e, "write failed"),
        Err(e) => warn!(%peer, error = %e, "writer task failed"),
        Ok(Ok(())) => {}
    }
}

/// Sniffs the first byte: a TLS peer gets the handshake, anyone else the
/// one plaintext line that explains the mistake.
async fn accept_tls(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    match tls::sniff(&tcp).await? {
        FirstBytes::Closed => Ok(None),
        FirstBytes::Plaintext => {
            debug!("plaintext client told to use TLS");
            linger_close(tcp, tls::TLS_REQUIRED_LINE.as_bytes()).await;
            Ok(None)
        }
        FirstBytes::Tls => acceptor.accept(tcp).await.map(Some),
    }
}

enum Login {
    In(ClientId, Outbox, Inbox),
    /// Send this line, then close.
    Refused(bytes::Bytes),
    /// The peer went away, or used up its nickname tries.
    Gone,
}

/// `NICK` … `WELCOME`: up to [`MAX_NICK_TRIES`] nicknames, bans, `PASS`.
async fn login<S>(ctx: &PeerContext, conn: &mut Connection<S>, ip: IpAddr) -> std::io::Result<Login>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hub = &ctx.hub;
    let nick_line = ServerLine::Nick.encode();
    for _ in 0..MAX_NICK_TRIES {
        conn.write_line(&nick_line).await?;
        let answer = match conn.read_frame().await? {
            None => return Ok(Login::Gone),
            Some(Frame::Line(l)) => l,
            Some(Frame::TooLong) => {
                send_error(
                    conn,
                    ErrorCode::LineTooLong,
                    "a nickname is at most 24 characters",
                )
                .await?;
                continue;
            }
            Some(Frame::InvalidUtf8) => {
                send_error(conn, ErrorCode::InvalidUtf8, "that was not valid UTF-8").await?;
                continue;
            }
        };
        let nick = match Nick::parse(answer.trim_matches(' ')) {
            Ok(nick) => nick,
            Err(e) => {
                send_error(conn, ErrorCode::NickInvalid, &e.to_string()).await?;
                continue;
            }
        };
        if let Some(reason) = hub.ban_reason(&nick, ip) {
            info!(nick = %nick, %ip, "banned client refused");
            return Ok(Login::Refused(ServerLine::Ban(&reason).encode()));
        }
        if hub.is_taken(&nick) {
            let text = format!("{nick} is in use; choose another nickname");
            send_error(conn, ErrorCode::NickTaken, &text).await?;
            continue;
        }
        if let Some(hash) = hub.password_hash(&nick) {
            conn.write_line(&ServerLine::Pass.encode()).await?;
            let password = match conn.read_frame().await? {
                None => return Ok(Login::Gone),
                Some(Frame::Line(p)) => p,
                Some(_) => String::new(),
            };
            // Argon2 is deliberately slow: keep it off the async workers.
            let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
                .await
                .unwrap_or(false);
            if !ok {
                warn!(nick = %nick, %ip, "wrong password");
                return Ok(Login::Refused(
                    ServerLine::Refuse("wrong password").encode(),
                ));
            }
        }
        let (outbox, inbox) = outbound::channel(ctx.outbound_queue_bytes);
        match hub.register(nick.clone(), ip, outbox.clone()) {
            Ok(id) => return Ok(Login::In(id, outbox, inbox)),
            Err(RegisterError::Taken) => {
                let text = format!("{nick} is in use; choose another nickname");
                send_error(conn, ErrorCode::NickTaken, &text).await?;
            }
            Err(RegisterError::ShuttingDown) => {
                return Ok(Login::Refused(
                    ServerLine::Info("the server is shutting down").encode(),
                ))
            }
        }
    }
    Ok(Login::Gone)
}

async fn send_error<S>(conn: &mut Connection<S>, code: ErrorCode, text: &str) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_line(&ServerLine::Error { code, text }.encode())
        .await
}

/// After login: every frame becomes an `ERROR` or a command for the hub,
/// until the peer leaves or the hub closes this client.
async fn read_loop<R: AsyncRead + Unpin>(
    hub: &Hub,
    id: ClientId,
    outbox: &Outbox,
    reader: &mut LineReader<R>,
) {
    loop {
        let frame = tokio::select! {
            _ = outbox.closing() => return,
            f = reader.read_frame() => f,
        };
        let line = match frame {
            Ok(Some(Frame::Line(line))) => line,
            Ok(Some(Frame::TooLong)) => {
                hub.error(
                    id,
                    ErrorCode::LineTooLong,
                    "a line is at most 4096 bytes including its newline; the rest of it was discarded",
                );
                continue;
            }
            Ok(Some(Frame::InvalidUtf8)) => {
                hub.error(
                    id,
                    ErrorCode::InvalidUtf8,
                    "line discarded: it is not valid UTF-8",
                );
                continue;
            }
            Ok(None) => return,
            Err(e) => return debug!(error = %e, "read failed"),
        };
        if let Err(e) = check_text(&line) {
            hub.error(id, ErrorCode::BadText, &format!("line discarded: {e}"));
            continue;
        }
        match Command::parse(&line) {
            Err(e) => hub.error(id, e.code, &e.text),
            Ok(cmd) => {
                let quit = matches!(cmd, Command::Quit(_));
                hub.handle(id, cmd).await;
                if quit {
                    return;
                }
            }
        }
    }
}

/// Sends one last line over TLS, closes it in order, and lets the peer read
/// it before the socket goes.
async fn refuse<S>(mut conn: Connection<S>, line: &[u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(LINGER, async {
        conn.write_line(line).await?;
        conn.shutdown().await
    })
    .await;
    // Reading until the peer closes (or briefly) avoids a TCP reset that
    // could destroy the line before the peer reads it.
    let _ = timeout(LINGER, async {
        while let Ok(Some(_)) = conn.read_frame().await {}
    })
    .await;
}

/// The plaintext equivalent of [`refuse`], for peers that do not speak TLS.
async fn linger_close(mut tcp: TcpStream, line: &[u8]) {
    let _ = timeout(LINGER, async {
        tcp.write_all(line).await?;
        tcp.shutdown().await
    })
    .await;
    let mut sink = [0u8; 512];
    let _ = timeout(LINGER, async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
