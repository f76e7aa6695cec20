//! The account and invite commands: `/register`, `/password`,
//! `/unregister`, `/registration`, `/invite`, `/invites`, `/uninvite`.
//!
//! ```text
//! Peer::dispatch ─▶ one handler here ─▶ checks (policy, caps, lockout)
//!   ─▶ Storage::call (blocking pool: argon2, the database) ─▶ the accounts cache
//!   ─▶ INFO / ERROR to the caller alone
//! ```
//!
//! Nothing here takes the hub's state lock or reaches other clients: each
//! answer goes to the caller's own queue. A change is committed to the
//! store before it is confirmed (and before the accounts cache takes it);
//! a failed write answers `INFO … NOT saved: <why>`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rand::RngCore;
use tracing::{info, warn};

use crate::accounts::{hash_password, Role};
use crate::invites::{code_hash, new_invite, InviteRefused};
use crate::limits::{Guess, NoGuess};
use crate::peer::PeerContext;
use crate::room::ClientId;
use crate::store::{
    save_registration, saved_registration, AccountRow, Refusal, Registration, Terms,
};
use tlschat_protocol::command::Secret;
use tlschat_protocol::{
    ErrorCode, HostPort, InviteCode, InviteLink, InvitePrefix, Nick, RegistrationChange, ServerLine,
};

/// The registration policy in force: the one `/registration` saved, else
/// the configured one. A saved word this version cannot read, or a store
/// that cannot be read, counts as `off` (and is logged): refusing is the
/// safe way to be wrong.
pub(crate) async fn registration_policy(ctx: &PeerContext) -> Registration {
    let configured = ctx.access.get().registration;
    match ctx.hub.storage().call(saved_registration).await {
        Ok(saved) => saved.unwrap_or(configured),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the saved registration policy");
            Registration::Off
        }
    }
}

/// Who runs a command, as the peer knows it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) id: ClientId,
    pub(crate) role: Role,
    /// Until when the invite the session came in with is valid.
    pub(crate) invite_until: Option<SystemTime>,
    pub(crate) ip: IpAddr,
    /// The address group: the registration cap and the lockout count here.
    pub(crate) group: IpAddr,
    pub(crate) local: Option<SocketAddr>,
}

/// How long the per-address registration cap looks back.
const REGISTRATION_WINDOW: Duration = Duration::from_secs(24 * 3600);

fn info(text: &str) -> Bytes {
    ServerLine::Info(text).encode()
}

fn error(code: ErrorCode, text: &str) -> Bytes {
    ServerLine::Error { code, text }.encode()
}

fn until(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Hashes `password` on the blocking pool, in one of the argon2 slots the
/// logins use.
async fn hash(ctx: &PeerContext, password: String) -> Result<String, String> {
    let Ok(slot) = ctx.verify_slots.clone().acquire_owned().await else {
        return Err("the server is shutting down".to_owned());
    };
    let job = tokio::task::spawn_blocking(move || {
        let phc = hash_password(&password).map_err(|e| e.to_string());
        drop(slot);
        phc
    });
    job.await.unwrap_or_else(|e| Err(e.to_string()))
}

/// `/register PASSWORD [CODE]`. The cheap refusals come first; the caps
/// and the code are checked again, and the code's use taken, in the
/// transaction that makes the account (parallel sessions cannot pass a cap
/// together, and a refused registration spends no use).
pub(crate) async fn register(
    ctx: &PeerContext,
    caller: &Caller,
    password: Secret<'_>,
    code: Option<InviteCode>,
) -> Vec<Bytes> {
    let hub = &ctx.hub;
    let Some(nick) = hub.nick_of(caller.id) else {
        return Vec::new();
    };
    if hub.with_accounts(|a| a.is_registered(&nick)) {
        let text = format!("{nick} is already an account; /password OLD NEW changes its password");
        return vec![error(ErrorCode::NotPermitted, &text)];
    }
    let storage = hub.storage();
    let now = storage.now();
    let code = match registration_policy(ctx).await {
        Registration::Open => None,
        Registration::Off => {
            return vec![error(
                ErrorCode::NotPermitted,
                "registration is off on this server; ask its operator",
            )]
        }
        Registration::InviteOnly if caller.invite_until.is_some_and(|until| until > now) => None,
        Registration::InviteOnly => match code {
            Some(code) => Some(code),
            None => {
                return vec![error(
                    ErrorCode::NotPermitted,
                    "registration needs an invite here: /register PASSWORD CODE",
                )]
            }
        },
    };
    let limits = ctx.gate.limits();
    let terms = Terms {
        max_accounts: limits.max_accounts,
        per_group: limits.registrations_per_address,
        since: now - REGISTRATION_WINDOW,
        code: code.as_ref().map(|c| code_hash(c.expose())),
        now,
    };
    if terms.max_accounts > 0 && hub.with_accounts(|a| a.len()) >= terms.max_accounts {
        return vec![refused(&Refusal::Full, &terms)];
    }
    if terms.per_group > 0 {
        let (group, since) = (caller.group, terms.since);
        match storage
            .call(move |s| s.registrations_since(group, since))
            .await
        {
            Ok(n) if n >= terms.per_group => return vec![refused(&Refusal::AddressCap, &terms)],
            Ok(_) => {}
            Err(e) => return vec![not_saved("registration", &e.to_string())],
        }
    }
    // A wrong code is a wrong guess; reserved before argon2 runs.
    let guess = match code
        .is_some()
        .then(|| reserve(ctx, caller.group))
        .transpose()
    {
        Ok(guess) => guess,
        Err(line) => return vec![line],
    };
    let phc = match hash(ctx, password.expose().to_owned()).await {
        Ok(phc) => phc,
        Err(why) => return vec![not_saved("registration", &why)],
    };
    let row = AccountRow {
        nick: nick.clone(),
        phc: phc.clone(),
        role: Role::User,
        created: now,
        created_from: Some(caller.group),
    };
    let written = terms.clone();
    let made = storage
        .call(move |s| Ok(s.register_account(&row, &written)))
        .await
        .unwrap_or_else(|e| Err(Refusal::Store(e)));
    match made {
        Ok(()) => {
            if let Some(guess) = guess {
                guess.settle(true);
            }
        }
        Err(Refusal::BadCode) => {
            if let Some(guess) = guess {
                lockout_warning(guess.settle(false), caller.ip);
            }
            return vec![refused(&Refusal::BadCode, &terms)];
        }
        // Any other refusal came before the code was looked at: the
        // guess goes back unchecked when it is dropped.
        Err(Refusal::Exists) => {
            let text = format!("{nick} is already an account");
            return vec![error(ErrorCode::NotPermitted, &text)];
        }
        Err(other) => return vec![refused(&other, &terms)],
    }
    hub.with_accounts(|a| a.cache_insert(nick.clone(), phc, Role::User));
    info!(nick = %nick, ip = %caller.ip, "registered");
    let text = format!("registered {nick}: connecting as {nick} now asks for this password");
    vec![info(&text)]
}

/// The `ERROR` answering a refused registration.
fn refused(why: &Refusal, terms: &Terms) -> Bytes {
    match why {
        Refusal::Exists => error(ErrorCode::NotPermitted, &why.to_string()),
        Refusal::Full => error(
            ErrorCode::NotPermitted,
            "this server has all the accounts it takes; ask its operator",
        ),
        Refusal::AddressCap => {
            let text = format!(
                "at most {} registrations a day from your address",
                terms.per_group
            );
            error(ErrorCode::RateLimited, &text)
        }
        Refusal::BadCode => error(
            ErrorCode::NotPermitted,
            "that invite code is not valid (used up, expired or revoked)",
        ),
        Refusal::Store(e) => not_saved("registration", &e.to_string()),
    }
}

/// A guess from the address's one lockout, or the `ERROR rate-limited`.
fn reserve(ctx: &PeerContext, group: IpAddr) -> Result<Guess, Bytes> {
    let wait = match ctx.gate.reserve_guess(group) {
        Ok(guess) => return Ok(guess),
        Err(NoGuess::LockedOut(left)) | Err(NoGuess::Busy(left)) => left,
    };
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let text = format!("{secs} too many wrong passwords from your address; try again in {secs} s");
    Err(error(ErrorCode::RateLimited, &text))
}

fn lockout_warning(locked: Option<Duration>, ip: IpAddr) {
    if let Some(length) = locked {
        warn!(%ip, "too many wrong passwords: address locked out for {} s", length.as_secs());
    }
}

fn not_saved(what: &str, why: &str) -> Bytes {
    warn!("{what} not saved: {why}");
    info(&format!("{what} NOT saved: {why}"))
}

/// `/password OLD NEW`.
pub(crate) async fn password(
    ctx: &PeerContext,
    caller: &Caller,
    old: Secret<'_>,
    new: Secret<'_>,
) -> Vec<Bytes> {
    let hub = &ctx.hub;
    let Some(nick) = hub.nick_of(caller.id) else {
        return Vec::new();
    };
    let Some(stored) = hub.password_hash(&nick) else {
        let text = format!("{nick} is no account; /register PASSWORD makes it one");
        return vec![error(ErrorCode::NotPermitted, &text)];
    };
    let guess = match reserve(ctx, caller.group) {
        Ok(guess) => guess,
        Err(line) => return vec![line],
    };
    let old = old.expose().to_owned();
    if !ctx
        .verify(stored, old, guess, nick.clone(), caller.ip)
        .await
    {
        return vec![error(ErrorCode::NotPermitted, "wrong password")];
    }
    let phc = match hash(ctx, new.expose().to_owned()).await {
        Ok(phc) => phc,
        Err(why) => return vec![not_saved("password", &why)],
    };
    let (key, stored_phc) = (nick.key().to_owned(), phc.clone());
    if let Err(e) = hub
        .storage()
        .call(move |s| s.set_password(&key, &stored_phc))
        .await
    {
        return vec![not_saved("password", &e.to_string())];
    }
    hub.with_accounts(|a| a.cache_password(&nick, phc));
    info!(nick = %nick, "password changed");
    vec![info("password changed")]
}

/// `/unregister NICK`, by the admin.
pub(crate) async fn unregister(ctx: &PeerContext, target: &str) -> Vec<Bytes> {
    let no_such = || {
        let text = format!("{target} is no account");
        vec![error(ErrorCode::NoSuchNick, &text)]
    };
    let Ok(nick) = Nick::parse(target) else {
        return no_such();
    };
    if Role::of(&nick).is_admin() {
        return vec![error(
            ErrorCode::NotPermitted,
            "the admin account stays (`tlschat-server passwd` changes its password)",
        )];
    }
    let key = nick.key().to_owned();
    match ctx
        .hub
        .storage()
        .call(move |s| s.delete_account(&key))
        .await
    {
        Ok(true) => {}
        Ok(false) => return no_such(),
        Err(e) => return vec![not_saved("unregister", &e.to_string())],
    }
    let was = ctx.hub.with_accounts(|a| {
        let was = a.role_of(&nick);
        a.cache_remove(nick.key());
        was
    });
    // A connected holder stays, now a user (a moderator no more); its room
    // sees the `@` go at once, as after `/deop`.
    if let Some(holder) = ctx.hub.set_holder_role(&nick, Role::User) {
        if was == Some(Role::Moderator) {
            ctx.hub.refresh_users_of(holder);
        }
    }
    info!(nick = %nick, "unregistered");
    vec![info(&format!("unregistered {nick}"))]
}

/// `/registration [open|invite-only|off|default]`, by the admin.
pub(crate) async fn registration(
    ctx: &PeerContext,
    change: Option<RegistrationChange>,
) -> Vec<Bytes> {
    let configured = ctx.access.get().registration;
    let storage = ctx.hub.storage();
    let saved = match change {
        None => {
            return vec![match storage.call(saved_registration).await {
                Ok(Some(policy)) => info(&format!(
                    "registration is {policy} (set by /registration; /registration default returns to the configured {configured})"
                )),
                Ok(None) => info(&format!("registration is {configured} (configured)")),
                Err(e) => info(&format!("registration cannot be read: {e}")),
            }]
        }
        Some(RegistrationChange::Default) => None,
        Some(RegistrationChange::Set(policy)) => Some(policy),
    };
    if let Err(e) = storage.call(move |s| save_registration(s, saved)).await {
        return vec![not_saved("registration policy", &e.to_string())];
    }
    let text = match saved {
        Some(policy) => format!("registration is now {policy}"),
        None => format!("registration is now {configured} (configured)"),
    };
    info!("{text}");
    vec![info(&text)]
}

/// `/invite [USES] [DURATION]`: a new code, its link and its terms.
pub(crate) async fn invite(
    ctx: &PeerContext,
    caller: &Caller,
    uses: Option<u32>,
    life: Option<Duration>,
) -> Vec<Bytes> {
    let Some(nick) = ctx.hub.nick_of(caller.id) else {
        return Vec::new();
    };
    let storage = ctx.hub.storage();
    let now = storage.now();
    let by = nick.key().to_owned();
    let live = match storage.call(move |s| s.invites(now)).await {
        Ok(rows) => rows
            .iter()
            .filter(|r| r.by.to_ascii_lowercase() == by)
            .count(),
        Err(e) => return vec![not_saved("invite", &e.to_string())],
    };
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    let code = InviteCode::from_bytes(&bytes);
    let row = match new_invite(
        caller.role,
        nick.as_str(),
        code.expose(),
        uses,
        life,
        live,
        now,
    ) {
        Ok(row) => row,
        Err(e @ InviteRefused::NoUses) => {
            return vec![error(ErrorCode::BadArgument, &e.to_string())]
        }
        Err(e) => return vec![error(ErrorCode::NotPermitted, &e.to_string())],
    };
    let link = match link_for(ctx, caller, code) {
        Ok(link) => link,
        Err(why) => return vec![error(ErrorCode::NotPermitted, &why)],
    };
    let terms = format!(
        "invite {}: {} uses, until {}",
        row.prefix,
        row.uses_left,
        until(row.expires)
    );
    let stored = row.clone();
    if let Err(e) = storage.call(move |s| s.add_invite(&stored)).await {
        return vec![not_saved("invite", &e.to_string())];
    }
    info!(by = %nick, prefix = %row.prefix, uses = row.uses_left, "invite made");
    vec![info(&format!("invite {link}")), info(&terms)]
}

/// The link for `code`: the configured public name, else the default host
/// (first `--san`, the certificate's name), else the address the caller's
/// own connection reached (with a warning: it may be a private address).
fn link_for(ctx: &PeerContext, caller: &Caller, code: InviteCode) -> Result<InviteLink, String> {
    let identity = ctx.access.identity();
    let public = ctx.access.get().public_name.clone();
    let local_port = caller.local.map(|a| a.port());
    let host = match public
        .as_ref()
        .map(|p| p.host.clone())
        .or(identity.default_host)
    {
        Some(host) => host,
        None => {
            let local = caller
                .local
                .ok_or("the server has no name for links; set public_name")?;
            if !ctx.access.warned_local_host.swap(true, Ordering::Relaxed) {
                warn!(
                    "invite links name {}, the address the inviter reached; set public_name \
                     (--public-name HOST[:PORT]) to the name others reach",
                    local.ip()
                );
            }
            local.ip().to_string()
        }
    };
    let port = public
        .and_then(|p| p.port)
        .or(local_port)
        .unwrap_or(tlschat_protocol::DEFAULT_PORT);
    let server = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let server: HostPort = server.parse()?;
    InviteLink::new(&server, identity.fingerprint, Some(code)).map_err(|e| e.to_string())
}

/// `/invites`: the live codes (a moderator's own; all for the admin).
pub(crate) async fn invites(ctx: &PeerContext, caller: &Caller) -> Vec<Bytes> {
    let Some(nick) = ctx.hub.nick_of(caller.id) else {
        return Vec::new();
    };
    let storage = ctx.hub.storage();
    let now = storage.now();
    let rows = match storage.call(move |s| s.invites(now)).await {
        Ok(rows) => rows,
        Err(e) => return vec![info(&format!("invites cannot be read: {e}"))],
    };
    let lines: Vec<Bytes> = rows
        .iter()
        .filter(|r| caller.role.is_admin() || r.by.to_ascii_lowercase() == nick.key())
        .map(|r| {
            let mut text = format!(
                "{} {} uses left, until {}, by {}",
                r.prefix,
                r.uses_left,
                until(r.expires),
                r.by
            );
            if !r.bound.is_empty() {
                text.push_str(", used by ");
                text.push_str(&r.bound.join(" "));
            }
            info(&text)
        })
        .collect();
    if lines.is_empty() {
        return vec![info("no invites")];
    }
    lines
}

/// `/uninvite PREFIX`: a moderator's own codes; any for the admin.
pub(crate) async fn uninvite(
    ctx: &PeerContext,
    caller: &Caller,
    prefix: &InvitePrefix,
) -> Vec<Bytes> {
    let Some(nick) = ctx.hub.nick_of(caller.id) else {
        return Vec::new();
    };
    let by = (!caller.role.is_admin()).then(|| nick.key().to_owned());
    let wanted = prefix.as_str().to_owned();
    let revoked = match ctx
        .hub
        .storage()
        .call(move |s| s.revoke_invites(&wanted, by.as_deref()))
        .await
    {
        Ok(rows) => rows,
        Err(e) => return vec![not_saved("uninvite", &e.to_string())],
    };
    if revoked.is_empty() {
        let text = format!("no invite matches {prefix}");
        return vec![error(ErrorCode::NoSuchNick, &text)];
    }
    revoked
        .iter()
        .map(|r| {
            info!(by = %nick, prefix = %r.prefix, "invite revoked");
            info(&format!("revoked {}", r.prefix))
        })
        .collect()
}
