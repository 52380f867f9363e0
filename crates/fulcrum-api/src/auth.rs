//! Who may use the console and the JSON API, sans IO: the users file
//! (`fulcrum passwd` writes it), password and token checks, sessions with
//! their CSRF tokens, and the throttle on failed logins. Time is passed in.
//!
//! The users file has one line per user or token, `#` comments allowed:
//!
//! ```text
//! user:admin:admin:$argon2id$v=19$m=19456,t=2,p=1$…   password (argon2, PHC string)
//! token:grafana:viewer:sha256:9f86d0818…              API token (SHA-256 of it)
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Look: the live view, the configuration, the state.
    Viewer,
    /// Look and change: drain, edit, reload, `adm` commands.
    Admin,
}

impl Role {
    /// As the users file writes it.
    pub fn word(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "`{other}` is not a role: use admin (may change things) or viewer (read-only)"
            )),
        }
    }
}

/// One line of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A person who logs in with a password.
    User {
        /// The name.
        name: String,
        /// What they may do.
        role: Role,
        /// The argon2 hash, a PHC string.
        hash: String,
    },
    /// A program that sends `Authorization: Bearer TOKEN`.
    Token {
        /// The token's name (for logs).
        name: String,
        /// What it may do.
        role: Role,
        /// SHA-256 of the token.
        sha256: [u8; 32],
    },
}

impl Credential {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Credential::User { name, .. } | Credential::Token { name, .. } => name,
        }
    }

    /// The line the users file holds for it.
    pub fn line(&self) -> String {
        match self {
            Credential::User { name, role, hash } => format!("user:{name}:{}:{hash}", role.word()),
            Credential::Token { name, role, sha256 } => {
                format!("token:{name}:{}:sha256:{}", role.word(), hex(sha256))
            }
        }
    }
}

/// Bytes as lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A name the users file can hold: letters, digits, `-`, `_`, `.`, `@`.
///
/// # Errors
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot be a user or token name: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
        ))
    }
}

/// The users file, read.
#[derive(Debug, Clone, Default)]
pub struct Users {
    creds: Vec<Credential>,
}

impl Users {
    /// Read the file's text; every bad line is an error naming it.
    ///
    /// # Errors
    /// `file:line: what is wrong`, one line each.
    pub fn parse(file: &str, text: &str) -> Result<Users, String> {
        let mut creds = Vec::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match parse_line(l) {
                Ok(c) => {
                    if creds.iter().any(|x: &Credential| {
                        x.name() == c.name()
                            && std::mem::discriminant(x) == std::mem::discriminant(&c)
                    }) {
                        errors.push(format!(
                            "{file}:{}: `{}` appears twice; keep one line",
                            i + 1,
                            c.name()
                        ));
                    } else {
                        creds.push(c);
                    }
                }
                Err(e) => errors.push(format!("{file}:{}: {e}", i + 1)),
            }
        }
        if errors.is_empty() {
            Ok(Users { creds })
        } else {
            Err(errors.join("\n"))
        }
    }

    /// The lines, in order.
    pub fn credentials(&self) -> &[Credential] {
        &self.creds
    }

    /// Put a credential in, replacing one of the same kind and name.
    pub fn set(&mut self, c: Credential) {
        let same = |x: &Credential| {
            x.name() == c.name() && std::mem::discriminant(x) == std::mem::discriminant(&c)
        };
        match self.creds.iter_mut().find(|x| same(x)) {
            Some(x) => *x = c,
            None => self.creds.push(c),
        }
    }

    /// Take a user or token out; whether there was one.
    pub fn remove(&mut self, token: bool, name: &str) -> bool {
        let before = self.creds.len();
        self.creds
            .retain(|c| !(c.name() == name && matches!(c, Credential::Token { .. }) == token));
        self.creds.len() != before
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let mut s =
            String::from("# Fulcrum console users and API tokens: written by `fulcrum passwd`.\n");
        for c in &self.creds {
            s.push_str(&c.line());
            s.push('\n');
        }
        s
    }

    /// Whether any user can log in.
    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }

    /// The user's hash and role, to check a password with
    /// [`verify_password`] (kept apart: it takes tens of milliseconds).
    pub fn user(&self, name: &str) -> Option<(Role, &str)> {
        self.creds.iter().find_map(|c| match c {
            Credential::User {
                name: n,
                role,
                hash,
            } if n == name => Some((*role, hash.as_str())),
            _ => None,
        })
    }

    /// The token's name and role, if `token` is one of the file's.
    pub fn token(&self, token: &str) -> Option<(&str, Role)> {
        let digest = sha256(token.as_bytes());
        self.creds.iter().find_map(|c| match c {
            Credential::Token { name, role, sha256 } if same(sha256, &digest) => {
                Some((name.as_str(), *role))
            }
            _ => None,
        })
    }
}

fn parse_line(l: &str) -> Result<Credential, String> {
    let mut parts = l.splitn(4, ':');
    let (kind, name, role, secret) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    check_name(name)?;
    let role: Role = role.parse()?;
    match kind {
        "user" => {
            PasswordHash::new(secret).map_err(|e| {
                format!("the password hash of `{name}` is not a PHC string ({e}); set it again with `fulcrum passwd {name}`")
            })?;
            Ok(Credential::User {
                name: name.into(),
                role,
                hash: secret.into(),
            })
        }
        "token" => {
            let sha = secret
                .strip_prefix("sha256:")
                .and_then(unhex32)
                .ok_or_else(|| {
                    format!("the token `{name}` is not `sha256:` and 64 hex digits; make a new one with `fulcrum passwd --token {name}`")
                })?;
            Ok(Credential::Token {
                name: name.into(),
                role,
                sha256: sha,
            })
        }
        other => Err(format!(
            "`{other}` lines are unknown: lines are `user:NAME:ROLE:HASH` or `token:NAME:ROLE:sha256:HEX`"
        )),
    }
}

/// SHA-256 of some bytes.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hash a password for the users file (argon2id, a fresh salt).
///
/// # Errors
/// When the system gives no randomness.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches a PHC hash (the hash's own parameters).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A fresh random secret as hex: `bytes` random bytes.
///
/// # Errors
/// When the system gives no randomness.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut b = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "the system gives no randomness".to_string())?;
    Ok(hex(&b))
}

/// A logged-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Their name.
    pub user: String,
    /// What they may do.
    pub role: Role,
    /// The token every change they send must carry.
    pub csrf: String,
    created: Duration,
    last_seen: Duration,
}

/// Sessions, bounded: past [`Sessions::MAX`] the least recently used goes.
#[derive(Debug, Default)]
pub struct Sessions {
    /// By SHA-256 of the session id (the id itself lives only in the cookie).
    by_id: HashMap<[u8; 32], Session>,
}

impl Sessions {
    /// Sessions kept at once.
    pub const MAX: usize = 1024;
    /// A session unused this long ends.
    pub const IDLE: Duration = Duration::from_secs(30 * 60);
    /// A session ends this long after login, used or not.
    pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

    /// Start a session; its id (for the cookie) and the session.
    ///
    /// # Errors
    /// When the system gives no randomness.
    pub fn start(
        &mut self,
        user: &str,
        role: Role,
        now: Duration,
    ) -> Result<(String, Session), String> {
        self.expire(now);
        if self.by_id.len() >= Self::MAX
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            self.by_id.remove(&oldest);
        }
        let id = random_hex(32)?;
        let s = Session {
            user: user.into(),
            role,
            csrf: random_hex(32)?,
            created: now,
            last_seen: now,
        };
        self.by_id.insert(sha256(id.as_bytes()), s.clone());
        Ok((id, s))
    }

    /// The session of a cookie's id, if it is live (and mark it used).
    pub fn get(&mut self, id: &str, now: Duration) -> Option<Session> {
        let k = sha256(id.as_bytes());
        let s = self.by_id.get_mut(&k)?;
        if now.saturating_sub(s.last_seen) > Self::IDLE
            || now.saturating_sub(s.created) > Self::LIFETIME
        {
            self.by_id.remove(&k);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// End a session.
    pub fn end(&mut self, id: &str) {
        self.by_id.remove(&sha256(id.as_bytes()));
    }

    /// End every session of a user (their password changed or they were
    /// removed).
    pub fn end_user(&mut self, user: &str) {
        self.by_id.retain(|_, s| s.user != user);
    }

    fn expire(&mut self, now: Duration) {
        self.by_id.retain(|_, s| {
            now.saturating_sub(s.last_seen) <= Self::IDLE
                && now.saturating_sub(s.created) <= Self::LIFETIME
        });
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Failed logins by client address: after [`Throttle::FREE`] failures in
/// [`Throttle::WINDOW`], that address waits before it may try again (the
/// wait doubling per failure up to [`Throttle::MAX_WAIT`]). Bounded: the
/// oldest addresses are forgotten past [`Throttle::MAX`].
#[derive(Debug, Default)]
pub struct Throttle {
    failures: HashMap<IpAddr, (u32, Duration)>,
    order: VecDeque<IpAddr>,
}

impl Throttle {
    /// Failures allowed before waits begin.
    pub const FREE: u32 = 5;
    /// How long failures are remembered.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// The longest wait.
    pub const MAX_WAIT: Duration = Duration::from_secs(300);
    /// Addresses remembered.
    pub const MAX: usize = 4096;

    /// How long `ip` must still wait before a login is tried; `None` when
    /// it may try now.
    pub fn wait(&self, ip: IpAddr, now: Duration) -> Option<Duration> {
        let (n, last) = self.failures.get(&ip)?;
        if *n < Self::FREE || now.saturating_sub(*last) > Self::WINDOW {
            return None;
        }
        let shift = (*n - Self::FREE).min(8);
        let wait = Duration::from_secs(1u64 << shift).min(Self::MAX_WAIT);
        let until = *last + wait;
        (until > now).then(|| until - now)
    }

    /// A login from `ip` failed.
    pub fn failed(&mut self, ip: IpAddr, now: Duration) {
        let e = self.failures.entry(ip).or_insert((0, now));
        if now.saturating_sub(e.1) > Self::WINDOW {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        if e.0 == 1 {
            self.order.push_back(ip);
        }
        while self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.failures.remove(&old);
            }
        }
    }

    /// A login from `ip` succeeded: its failures are forgotten.
    pub fn succeeded(&mut self, ip: IpAddr) {
        if self.failures.remove(&ip).is_some() {
            self.order.retain(|a| *a != ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1000);

    #[test]
    fn users_file_round_trip_and_checks() {
        let hash = hash_password("s3cret").unwrap();
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "s3creT"));
        assert!(!verify_password("not a hash", "s3cret"));
        let mut u = Users::default();
        u.set(Credential::User {
            name: "alice".into(),
            role: Role::Admin,
            hash: hash.clone(),
        });
        u.set(Credential::Token {
            name: "grafana".into(),
            role: Role::Viewer,
            sha256: sha256(b"tok"),
        });
        let back = Users::parse("users", &u.text()).unwrap();
        assert_eq!(back.credentials(), u.credentials());
        assert_eq!(back.user("alice"), Some((Role::Admin, hash.as_str())));
        assert_eq!(back.user("grafana"), None, "a token is not a user");
        assert_eq!(back.token("tok"), Some(("grafana", Role::Viewer)));
        assert_eq!(back.token("tok2"), None);
        assert_eq!(back.token(""), None);
        let mut b2 = back.clone();
        assert!(b2.remove(true, "grafana"));
        assert!(!b2.remove(false, "grafana"));
        assert_eq!(b2.token("tok"), None);
    }

    #[test]
    fn bad_lines_are_named_with_their_line() {
        let e = Users::parse(
            "/etc/fulcrum/console.users",
            "# comment\n\nuser:bob:root:$argon2id$x\nuser:b b:admin:x\ntoken:t:viewer:sha256:zz\nwhat:t:viewer:x\nuser:carol:admin:nothash\n",
        )
        .unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        assert!(
            lines[0].starts_with("/etc/fulcrum/console.users:3: `root` is not a role"),
            "{e}"
        );
        assert!(lines[1].contains(":4: `b b` cannot be"), "{e}");
        assert!(lines[2].contains(":5: the token `t` is not"), "{e}");
        assert!(lines[3].contains(":6: `what` lines are unknown"), "{e}");
        assert!(
            lines[4].contains(":7: the password hash of `carol` is not a PHC string"),
            "{e}"
        );
        let h = hash_password("x").unwrap();
        let twice = format!("user:a:admin:{h}\nuser:a:viewer:{h}\n");
        assert!(
            Users::parse("f", &twice)
                .unwrap_err()
                .contains("f:2: `a` appears twice")
        );
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_are_bounded() {
        let mut s = Sessions::default();
        let (id, sess) = s.start("alice", Role::Admin, T0).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(sess.csrf.len(), 64);
        assert_ne!(id, sess.csrf);
        assert_eq!(
            s.get(&id, T0 + Duration::from_secs(60)).unwrap().user,
            "alice"
        );
        assert!(s.get("forged", T0).is_none());
        // Used every 20 minutes: lives until its lifetime ends.
        let mut t = T0;
        while t < T0 + Sessions::LIFETIME - Duration::from_secs(1200) {
            t += Duration::from_secs(1200);
            assert!(s.get(&id, t).is_some(), "at {t:?}");
        }
        assert!(
            s.get(&id, T0 + Sessions::LIFETIME + Duration::from_secs(1))
                .is_none()
        );
        let (id2, _) = s.start("bob", Role::Viewer, T0).unwrap();
        assert!(
            s.get(&id2, T0 + Sessions::IDLE + Duration::from_secs(1))
                .is_none()
        );
        let (id3, _) = s.start("bob", Role::Viewer, T0).unwrap();
        s.end_user("bob");
        assert!(s.get(&id3, T0).is_none());
        for i in 0..Sessions::MAX + 10 {
            s.start("x", Role::Viewer, T0 + Duration::from_millis(i as u64))
                .unwrap();
        }
        assert_eq!(s.len(), Sessions::MAX);
    }

    #[test]
    fn failed_logins_make_an_address_wait_and_success_forgets() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut th = Throttle::default();
        for _ in 0..Throttle::FREE - 1 {
            th.failed(ip, T0);
        }
        assert_eq!(th.wait(ip, T0), None);
        th.failed(ip, T0);
        assert_eq!(th.wait(ip, T0), Some(Duration::from_secs(1)));
        assert_eq!(th.wait(other, T0), None);
        for _ in 0..20 {
            th.failed(ip, T0);
        }
        assert_eq!(th.wait(ip, T0), Some(Duration::from_secs(256)));
        assert_eq!(th.wait(ip, T0 + Duration::from_secs(256)), None);
        assert_eq!(
            th.wait(ip, T0 + Throttle::WINDOW + Duration::from_secs(1)),
            None
        );
        th.succeeded(ip);
        assert_eq!(th.wait(ip, T0), None);
        for i in 0..Throttle::MAX as u32 + 5 {
            th.failed(IpAddr::from(std::net::Ipv4Addr::from(i)), T0);
        }
        assert!(th.failures.len() <= Throttle::MAX);
    }

    #[test]
    fn constant_time_compare() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
