//! The director's control protocol: one JSON object per line on a Unix
//! socket, each request answered by one response line.
//!
//! ```text
//! → {"cmd":"reload"}
//! ← {"stdout":"/etc/lvs.cf: reloaded: …\n","stderr":"","exit_code":0}
//! ```
//!
//! ipvsadm commands travel typed: the client parses the command line and
//! resolves names itself ([`crate::ipvsadm::plan`]), sends the commands,
//! and renders the typed answers ([`crate::ipvsadm::render`]) — the director
//! never waits on a name server.
//!
//! ```text
//! → {"cmd":"adm","commands":[{"List":{"target":"All","format":{"numeric":true,…}}}]}
//! ← {"stdout":"","stderr":"","exit_code":0,"replies":[{"reply":"services","header":{…},"services":[…]}]}
//! ```

use serde::{Deserialize, Serialize};

/// A request to the director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Apply ipvsadm commands to the live table, in order, answering each
    /// with a [`Reply`](crate::ipvsadm::Reply) in [`Response::replies`].
    Adm {
        /// The commands, parsed by the client (a `-R` restore sends the
        /// commands it read).
        commands: Vec<crate::ipvsadm::AdmCommand>,
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

/// A request on its way to the controller, from the control socket or
/// from inside the director (the console, configuration sync, SIGHUP), with
/// where to send the answer.
#[derive(Debug)]
pub struct ControlMsg {
    /// What is asked.
    pub request: Request,
    /// The answer.
    pub reply: tokio::sync::oneshot::Sender<Response>,
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
    /// For [`Request::Adm`]: one answer per command, in order (then
    /// `stderr` and a non-zero `exit_code` say what went wrong after them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<crate::ipvsadm::Reply>,
}

impl From<crate::ipvsadm::Outcome> for Response {
    fn from(o: crate::ipvsadm::Outcome) -> Self {
        Response {
            stdout: o.stdout,
            stderr: o.stderr,
            exit_code: o.exit_code,
            replies: Vec::new(),
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

    use crate::ipvsadm::{AdmCommand, NumericResolver, Reply, Step, parse_args, plan};

    #[test]
    fn wire_form() {
        assert_eq!(
            encode(&Request::Adm {
                commands: vec![AdmCommand::Clear]
            }),
            "{\"cmd\":\"adm\",\"commands\":[\"Clear\"]}\n"
        );
        assert_eq!(
            decode::<Request>("{\"cmd\":\"status\"}").unwrap(),
            Request::Status
        );
        assert!(decode::<Request>("{\"cmd\":\"bogus\"}").is_err());
        // The string form of older clients is refused, not half-understood.
        assert!(decode::<Request>("{\"cmd\":\"adm\",\"args\":[\"-C\"]}").is_err());
        let text = encode(&Response::default());
        assert_eq!(text, "{\"stdout\":\"\",\"stderr\":\"\",\"exit_code\":0}\n");
        assert_eq!(
            decode::<Response>(text.trim_end()).unwrap(),
            Response::default()
        );
    }

    /// Every command the command line gives, and every kind of answer,
    /// crosses the socket unchanged.
    #[test]
    fn commands_and_replies_round_trip() {
        let lines = [
            "-A -t 10.0.0.1:80 -s sh -p 300 -M 255.255.255.0 --pe sip -b sh-port",
            "-A -u [2001:db8::1]:53 -s sh -o",
            "-A -f 7 -6 -s mh -M 64",
            "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 3 -x 100 -y 10",
            "-a -t 10.0.0.1:80 -r 10.1.0.2 -i --tun-type gue --tun-port 6080 --tun-csum",
            "-e -f 7 -6 -r 2001:db8::2 -g",
            "-d -t 10.0.0.1:80 -r 10.1.0.1:8080",
            "-D -u [2001:db8::1]:53",
            "-L -n --stats --exact --sort",
            "-L -c --persistent-conn",
            "-l -t 10.0.0.1:80 --rate",
            "-Z -t 10.0.0.1:80",
            "--set 900 120 300",
            "--start-daemon master --mcast-interface eth1 --syncid 9 --mcast-group 224.0.0.90 --mcast-port 8850 --mcast-ttl 2 --sync-maxlen 1400",
            "--stop-daemon backup",
            "-S -n",
            "-C",
        ];
        for line in lines {
            let args: Vec<String> = line.split(' ').map(str::to_string).collect();
            let steps = plan("ipvsadm", &args, "", &NumericResolver);
            let [Step::Run(c)] = steps.as_slice() else {
                panic!("{line}: {steps:?}");
            };
            assert!(crate::ipvsadm::validate(c).is_ok(), "{line}");
            let req = Request::Adm {
                commands: vec![c.clone()],
            };
            assert_eq!(
                decode::<Request>(encode(&req).trim_end()).unwrap(),
                req,
                "{line}"
            );
        }
        let mut table = fulcrum_core::Table::new();
        let setup = "-A -t 10.0.0.1:80 -s wrr\n-a -t 10.0.0.1:80 -r 10.1.0.1 -m -w 2\n";
        let args = ["-R".to_string()];
        let steps = plan("ipvsadm", &args, setup, &NumericResolver);
        crate::ipvsadm::answer(
            &crate::ipvsadm::commands(&steps),
            &mut table,
            std::time::Duration::ZERO,
            &|_, _| None,
        );
        let mut replies = Vec::new();
        for line in [
            "-L -n",
            "-L -c",
            "-L --timeout",
            "-L --daemon",
            "-l -t 10.0.0.9:1",
        ] {
            let args: Vec<String> = line.split(' ').map(str::to_string).collect();
            let Ok(crate::ipvsadm::Invocation::Command(c)) =
                parse_args("ipvsadm", &args, &NumericResolver)
            else {
                panic!("{line}");
            };
            replies.push(crate::ipvsadm::execute(
                &c,
                &mut table,
                std::time::Duration::ZERO,
            ));
        }
        replies.push(Reply::Daemons {
            daemons: vec![fulcrum_core::SyncDaemon {
                role: fulcrum_core::SyncRole::Backup,
                mcast_ifn: "eth1".into(),
                syncid: 3,
                sync_maxlen: 1400,
                mcast_group: Some("224.0.0.90".parse().unwrap()),
                mcast_port: 8850,
                mcast_ttl: 2,
            }],
        });
        let resp = Response {
            replies,
            ..Default::default()
        };
        assert_eq!(decode::<Response>(encode(&resp).trim_end()).unwrap(), resp);
    }
}
