//! The login on a trusted connection: the server asks `NICK` and maybe
//! `PASS` (an account's password) or `PASS join` (its join password or an
//! invite code), each answered at most once, until a `WELCOME` for our nickname
//! into the lobby; the result is a [`Connected`] the session takes over.

use std::fmt;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use crate::connect::{Prompter, Trusted};
use crate::{render, ClientOptions, ConnectError};
use tlschat_protocol::connection::Connection;
use tlschat_protocol::history::HISTORY_ALPN;
use tlschat_protocol::{ErrorCode, Fingerprint, Frame, PassFor, ServerLine, LOBBY};

/// A logged-in connection.
pub struct Connected {
    pub(crate) conn: Connection<TlsStream<TcpStream>>,
    pub(crate) nick: String,
    pub(crate) room: String,
    pub(crate) fingerprint: Fingerprint,
    /// What TLS negotiated, e.g. `TLS 1.3, X25519MLKEM768`.
    pub(crate) tls: String,
    /// The server selected ALPN `tlschat/2`: history mode (stamped room
    /// lines, a replay after each join).
    pub(crate) history: bool,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected")
            .field("nick", &self.nick)
            .field("room", &self.room)
            .field("fingerprint", &self.fingerprint)
            .field("tls", &self.tls)
            .field("history", &self.history)
            .finish()
    }
}

/// The protocol version and key exchange group a TLS session negotiated,
/// for the user to see (whether the session is post-quantum, for one).
fn describe_tls(session: &rustls::ClientConnection) -> String {
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_owned(),
    };
    match session.negotiated_key_exchange_group() {
        Some(group) => format!("{version}, {:?}", group.name()),
        None => version,
    }
}

impl Trusted {
    /// Logs in (nickname, password if asked), within twice the connect
    /// timeout.
    pub async fn login<'p>(
        mut self,
        opts: &ClientOptions,
        prompter: Option<&mut (dyn Prompter + 'p)>,
    ) -> Result<Connected, ConnectError> {
        let (nick, room) = match timeout(
            opts.connect_timeout * 2,
            login(opts, &mut self.conn, prompter),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(ConnectError::Timeout {
                    server: opts.server.to_string(),
                    what: "the login",
                    secs: opts.connect_timeout.as_secs() * 2,
                })
            }
        };
        let session = self.conn.get_ref().get_ref().1;
        let tls = describe_tls(session);
        let history = session.alpn_protocol() == Some(HISTORY_ALPN);
        Ok(Connected {
            conn: self.conn,
            nick,
            room,
            fingerprint: self.fingerprint,
            tls,
            history,
        })
    }
}

/// NICK → nickname, PASS → password, until WELCOME. Each prompt is
/// answered at most once: the real server asks again only after an
/// `ERROR`, which ends the login here, so a repeated prompt is a server
/// fishing for a second copy.
async fn login<'p>(
    opts: &ClientOptions,
    conn: &mut Connection<TlsStream<TcpStream>>,
    mut prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<(String, String), ConnectError> {
    let mut password = opts.password.clone();
    let mut join_secret = opts.join_secret.clone();
    let mut nick_sent = false;
    let mut password_sent = false;
    loop {
        let line = match conn.read_frame().await? {
            Some(Frame::Line(l)) => l,
            Some(_) => continue,
            None => return Err(ConnectError::Closed),
        };
        match ServerLine::parse(&line) {
            ServerLine::Nick => {
                if nick_sent {
                    return Err(ConnectError::Protocol(
                        "the server asked for the nickname again (NICK twice, no error between)"
                            .into(),
                    ));
                }
                nick_sent = true;
                conn.write_line(format!("{}\n", opts.nick).as_bytes())
                    .await?
            }
            ServerLine::Pass(asked) => {
                // One answer per connection, whichever prompt came first.
                if password_sent {
                    return Err(ConnectError::Protocol(
                        "the server asked for the password again (PASS twice); \
                         it is sent once per connection and was not sent again"
                            .into(),
                    ));
                }
                let answer = match asked {
                    PassFor::Account => {
                        if password.is_none() {
                            password = prompter.as_deref_mut().and_then(|p| p.password(&opts.nick));
                        }
                        password
                            .as_ref()
                            .ok_or_else(|| ConnectError::NoPassword(opts.nick.clone()))?
                    }
                    PassFor::Join => {
                        let server = opts.server.to_string();
                        if join_secret.is_none() {
                            join_secret =
                                prompter.as_deref_mut().and_then(|p| p.join_secret(&server));
                        }
                        join_secret
                            .as_ref()
                            .ok_or(ConnectError::NoJoinSecret(server))?
                    }
                };
                password_sent = true;
                conn.write_line(format!("{answer}\n").as_bytes()).await?;
            }
            ServerLine::Welcome { nick, room } => {
                check_welcome(opts, nick_sent, nick, room)?;
                return Ok((nick.to_owned(), room.to_owned()));
            }
            ServerLine::Refuse(r) => {
                return Err(ConnectError::Refused(render::sanitize(r).into_owned()))
            }
            ServerLine::Ban(r) => {
                return Err(ConnectError::Banned(render::sanitize(r).into_owned()))
            }
            ServerLine::Error { code, text } => {
                let text = render::sanitize(text).into_owned();
                return Err(match code {
                    ErrorCode::NickInvalid | ErrorCode::NickTaken => ConnectError::Nick(text),
                    _ => ConnectError::Server(format!("{code} {text}")),
                });
            }
            _ => {}
        }
    }
}

/// A `WELCOME` must answer our nickname and put us in the lobby, as the
/// protocol says; anything else is not obeyed.
fn check_welcome(
    opts: &ClientOptions,
    nick_sent: bool,
    nick: &str,
    room: &str,
) -> Result<(), ConnectError> {
    if !nick_sent {
        return Err(ConnectError::Protocol(
            "the server sent WELCOME before asking for a nickname".into(),
        ));
    }
    if !nick.eq_ignore_ascii_case(&opts.nick) {
        return Err(ConnectError::Protocol(format!(
            "WELCOME names the nickname `{}`, not `{}`",
            render::sanitize(nick),
            opts.nick
        )));
    }
    if !room.eq_ignore_ascii_case(LOBBY) {
        return Err(ConnectError::Protocol(format!(
            "WELCOME names the room `{}`; a login always enters {LOBBY}",
            render::sanitize(room)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Trust;

    #[test]
    fn welcome_must_name_our_nick_and_the_lobby() {
        let opts = ClientOptions::new(
            "h:1".parse().unwrap(),
            "Alice",
            Trust::Pin(Fingerprint([9; 32])),
        );
        assert!(check_welcome(&opts, true, "alice", "#Lobby").is_ok());
        for (sent, nick, room) in [
            (false, "Alice", "#lobby"),
            (true, "mallory", "#lobby"),
            (true, "Alice", "#elsewhere"),
            (true, "Alice", "#evil\u{1b}]0;x\u{7}"),
        ] {
            let e = check_welcome(&opts, sent, nick, room).unwrap_err();
            assert!(matches!(e, ConnectError::Protocol(_)), "{e:?}");
            assert!(!e.to_string().chars().any(|c| c.is_control()), "{e}");
        }
    }
}
