//! `fulcrum passwd`: the console's users file, as piranha-passwd set the
//! Piranha GUI's password — argon2 hashes, API tokens kept as SHA-256 only.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use fulcrum_api::auth::{self, Credential, Role, Users};

/// The shortest password taken.
pub const MIN_PASSWORD: usize = 8;

/// Read a password from the terminal without echo.
fn prompt(what: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("cannot open the terminal: {e}"))?;
    let old = tcgetattr(&tty).map_err(|e| format!("cannot read the terminal's mode: {e}"))?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    let mut out = &tty;
    let _ = write!(out, "{what}: ");
    let _ = out.flush();
    tcsetattr(&tty, OptionalActions::Flush, &quiet)
        .map_err(|e| format!("cannot turn the terminal's echo off: {e}"))?;
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(&tty, OptionalActions::Flush, &old);
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn password(name: &str) -> Result<String, String> {
    let pw = if std::io::stdin().is_terminal() {
        let a = prompt(&format!("New password for {name}"))?;
        let b = prompt("Again")?;
        if a != b {
            return Err("the two passwords differ; nothing changed".into());
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if pw.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password is shorter than {MIN_PASSWORD} characters; nothing changed"
        ));
    }
    Ok(pw)
}

fn change(
    users_path: &Path,
    name: &str,
    role: Role,
    token: bool,
    delete: bool,
) -> Result<String, String> {
    auth::check_name(name)?;
    let mut users = if users_path.exists() {
        crate::console::read_users(users_path)?.0
    } else if delete {
        return Err(format!("{} does not exist", users_path.display()));
    } else {
        if let Some(dir) = users_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Users::default()
    };
    let kind = if token { "token" } else { "user" };
    let said = if delete {
        if !users.remove(token, name) {
            return Err(format!("{} has no {kind} `{name}`", users_path.display()));
        }
        format!("{kind} `{name}` removed from {}", users_path.display())
    } else if token {
        let secret = auth::random_hex(32)?;
        users.set(Credential::Token {
            name: name.into(),
            role,
            sha256: auth::sha256(secret.as_bytes()),
        });
        println!("{secret}");
        format!(
            "token `{name}` ({}) added to {}: the line above is the token, shown this once; send it as `Authorization: Bearer TOKEN`",
            role.word(),
            users_path.display()
        )
    } else {
        let pw = password(name)?;
        users.set(Credential::User {
            name: name.into(),
            role,
            hash: auth::hash_password(&pw)?,
        });
        format!(
            "user `{name}` ({}) set in {}; a running console reads it at the next login",
            role.word(),
            users_path.display()
        )
    };
    fulcrum_net::files::write_atomic(users_path, users.text().as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", users_path.display()))?;
    Ok(said)
}

/// Run `fulcrum passwd`; the exit status.
pub fn run(users: &Path, name: &str, role: Role, token: bool, delete: bool) -> i32 {
    match change(users, name, role, token, delete) {
        Ok(said) => {
            eprintln!("fulcrum passwd: {said}");
            0
        }
        Err(e) => {
            eprintln!("fulcrum passwd: {e}");
            1
        }
    }
}
