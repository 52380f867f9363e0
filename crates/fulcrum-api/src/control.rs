//! The director's control protocol: one JSON object per line on a Unix
//! socket, each request answered by one response line.
//!
//! ```text
//! → {"cmd":"adm","args":["-L","-n"],"stdin":""}
//! ← {"stdout":"IP Virtual Server version 1.2.1 (size=4096)\n…","stderr":"","exit_code":0}
//! ```

use serde::{Deserialize, Serialize};

/// A request to the director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Run an ipvsadm command line against the live table. `stdin` feeds
    /// `-R`.
    Adm {
        /// The arguments after the program name.
        args: Vec<String>,
        /// Standard input for `-R`.
        #[serde(default)]
        stdin: String,
    },
    /// The director's state, for people.
    Status,
    /// Re-read the configuration file and apply what changed.
    Reload,
    /// Start a new director from the same program file (an upgraded binary
    /// if it was replaced) and arguments, hand it the proxy plane's
    /// listening sockets, and let this one finish its open connections:
    /// no connection is refused or cut.
    Restart,
    /// Counters and health in the Prometheus text format.
    Metrics,
    /// The director's state as JSON ([`DirectorState`](crate::state::DirectorState)) in
    /// `stdout`.
    State,
    /// Drain, disable or enable a real server of the configuration, named
    /// as lvs.cf names it.
    Server {
        /// The `virtual` block's name.
        #[serde(rename = "virtual")]
        virtual_server: String,
        /// The `server` block's name.
        server: String,
        /// What to do.
        action: crate::state::ServerAction,
    },
}

/// The answer: what a command-line tool prints and returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub exit_code: i32,
}

impl From<crate::ipvsadm::Outcome> for Response {
    fn from(o: crate::ipvsadm::Outcome) -> Self {
        Response {
            stdout: o.stdout,
            stderr: o.stderr,
            exit_code: o.exit_code,
        }
    }
}

/// Encode a message as one line.
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).expect("control messages always serialise");
    s.push('\n');
    s
}

/// Decode one line.
///
/// # Errors
/// The JSON error, for a line that is not a valid message.
pub fn decode<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let r = Request::Adm {
            args: vec!["-L".into(), "-n".into()],
            stdin: String::new(),
        };
        assert_eq!(
            encode(&r),
            "{\"cmd\":\"adm\",\"args\":[\"-L\",\"-n\"],\"stdin\":\"\"}\n"
        );
        assert_eq!(
            decode::<Request>("{\"cmd\":\"status\"}").unwrap(),
            Request::Status
        );
        assert_eq!(
            decode::<Request>("{\"cmd\":\"adm\",\"args\":[]}").unwrap(),
            Request::Adm {
                args: vec![],
                stdin: String::new()
            }
        );
        assert!(decode::<Request>("{\"cmd\":\"bogus\"}").is_err());
    }
}
