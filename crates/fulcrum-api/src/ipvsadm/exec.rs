//! Running ipvsadm commands against a [`Table`]: the kernel's answers turned
//! into ipvsadm's messages and exit codes.

use std::time::Duration;

use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{DestSpec, ServiceSpec, Table, TableError};

use fulcrum_core::SyncDaemon;

use super::parse::{
    AdmCommand, Format, Invocation, ListArgs, ListTarget, parse_args, usage, version,
};
use super::render::{
    ConnEntry, Header, ServiceEntry, render_conns, render_daemons, render_list, render_timeout,
};
use super::resolve::Resolver;
use super::validate::validate;

/// What ipvsadm would print and return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub exit_code: i32,
}

impl Outcome {
    /// A failure: `msg` on standard error, exit status `code`.
    pub fn err(msg: impl Into<String>, code: i32) -> Outcome {
        Outcome {
            stderr: msg.into(),
            exit_code: code,
            ..Default::default()
        }
    }
}

/// `ipvs_strerror` for the table's refusals (the kernel's errno, mapped).
fn strerror(e: &TableError) -> &'static str {
    match e {
        TableError::ServiceExists => "Service already exists",
        TableError::NoSuchService => "No such service",
        TableError::ServiceNotDefined => "Service not defined",
        TableError::DestExists => "Destination already exists",
        TableError::NoSuchDest => "No such destination",
        TableError::UnknownPersistenceEngine => "Scheduler or persistence engine not found",
        // EINVAL
        TableError::PortZeroNotPersistent
        | TableError::OnePacketNotUdp
        | TableError::FamilyMismatch
        | TableError::TooManyDests(_) => {
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        }
        // ERANGE
        TableError::ThresholdOrder | TableError::WeightRange => "Numerical result out of range",
    }
}

fn op(r: Result<(), TableError>) -> Reply {
    match r {
        Ok(()) => Reply::Done,
        Err(e) => Reply::failed(format!("{}\n", strerror(&e)), 255),
    }
}

/// The listing view of the whole table.
pub fn entries(table: &Table) -> Vec<ServiceEntry> {
    table
        .services()
        .iter()
        .map(ServiceEntry::from_service)
        .collect()
}

/// The connection listing view at time `now`.
pub fn conn_entries(table: &Table, now: Duration) -> Vec<ConnEntry> {
    table
        .conns()
        .iter()
        .map(|(_, c)| ConnEntry {
            proto: c.proto.name().to_string(),
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            state: c.state.name().to_string(),
            expires: c.expires().saturating_sub(now).as_secs(),
            pe: None,
        })
        .collect()
}

/// What a command did, as data: the director answers each command with
/// one, and the client renders it ([`Reply::render`]) with its own name
/// resolution, so a listing reads exactly as ipvsadm prints it while no name
/// is ever looked up inside the director.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Done; nothing to print.
    Done,
    /// Refused: ipvsadm's message (newline included) and exit status.
    Failed {
        /// What ipvsadm writes to standard error.
        message: String,
        /// The exit status.
        exit_code: i32,
    },
    /// Services, as `-L` (with the version line when `header` is given)
    /// and `-S` list them.
    Services {
        /// The version line's figures (`-L` of the whole table only).
        header: Option<Header>,
        /// The services, unsorted.
        services: Vec<ServiceEntry>,
    },
    /// `-L -c`: the connection table.
    Connections {
        /// The entries.
        conns: Vec<ConnEntry>,
    },
    /// `-L --timeout`, in seconds.
    Timeout {
        /// TCP.
        tcp: u64,
        /// TCP after FIN.
        tcpfin: u64,
        /// UDP.
        udp: u64,
    },
    /// `-L --daemon`.
    Daemons {
        /// The running sync daemons.
        daemons: Vec<SyncDaemon>,
    },
}

impl Reply {
    /// A refusal: `message` on standard error, exit status `code`.
    pub fn failed(message: impl Into<String>, exit_code: i32) -> Reply {
        Reply::Failed {
            message: message.into(),
            exit_code,
        }
    }

    /// What ipvsadm prints for this answer to `cmd`, names resolved by
    /// `r` (unless the command says `-n`).
    pub fn render(&self, cmd: &AdmCommand, r: &dyn Resolver) -> Outcome {
        let format = match cmd {
            AdmCommand::List(l) => l.format,
            AdmCommand::Save { numeric } => Format {
                rule: true,
                numeric: *numeric,
                ..Default::default()
            },
            _ => Format::default(),
        };
        let stdout = match self {
            Reply::Done => String::new(),
            Reply::Failed { message, exit_code } => return Outcome::err(message, *exit_code),
            Reply::Services { header, services } => render_list(services, &format, *header, r),
            Reply::Connections { conns } => render_conns(conns, &format, r),
            Reply::Timeout { tcp, tcpfin, udp } => render_timeout(*tcp, *tcpfin, *udp),
            Reply::Daemons { daemons } => render_daemons(daemons),
        };
        Outcome {
            stdout,
            ..Default::default()
        }
    }
}

/// Apply one command to the table (a `-R` restore arrives as the commands
/// it read: [`plan`]).
pub fn execute(cmd: &AdmCommand, table: &mut Table, now: Duration) -> Reply {
    let svc_spec = |a: &super::parse::SvcArgs| -> Result<ServiceSpec, Reply> {
        let kind: SchedulerKind = a
            .scheduler
            .parse()
            .map_err(|_| Reply::failed("Scheduler or persistence engine not found\n", 255))?;
        let mut spec = ServiceSpec::new(a.key, kind);
        spec.flags = a.flags;
        spec.persistent = a.persistent;
        spec.netmask = a.netmask;
        spec.one_packet = a.one_packet;
        spec.pe_name = a.pe_name.clone();
        Ok(spec)
    };
    let dest_spec = |d: &super::parse::DestArgs| DestSpec {
        addr: d.addr,
        port: d.port,
        fwd: d.fwd,
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
    };
    match cmd {
        AdmCommand::AddService(a) => match svc_spec(a) {
            Ok(s) => op(table.add_service(s)),
            Err(o) => o,
        },
        AdmCommand::EditService(a) => match svc_spec(a) {
            Ok(s) => op(table.edit_service(s)),
            Err(o) => o,
        },
        AdmCommand::DeleteService(k) => op(table.delete_service(k)),
        AdmCommand::Clear => {
            table.flush();
            Reply::Done
        }
        AdmCommand::AddDest(k, d) => op(table.add_dest(k, dest_spec(d)).map(|_| ())),
        AdmCommand::EditDest(k, d) => op(table.edit_dest(k, dest_spec(d))),
        AdmCommand::DeleteDest(k, addr, port) => op(table.delete_dest(k, addr, *port)),
        AdmCommand::Zero(k) => op(table.zero(k.as_ref())),
        AdmCommand::SetTimeout(tcp, fin, udp) => {
            let s = |v: &u32| Duration::from_secs(u64::from(*v));
            table.set_timeouts(s(tcp), s(fin), s(udp));
            Reply::Done
        }
        AdmCommand::Save { .. } => Reply::Services {
            header: None,
            services: entries(table),
        },
        AdmCommand::List(l) => match l.target {
            ListTarget::All => Reply::Services {
                header: Some(Header::default()),
                services: entries(table),
            },
            ListTarget::Service(k) => match table.service(&k) {
                Some(s) => Reply::Services {
                    header: None,
                    services: vec![ServiceEntry::from_service(s)],
                },
                None => Reply::failed("No such service\n", 1),
            },
            ListTarget::Connections => Reply::Connections {
                conns: conn_entries(table, now),
            },
            ListTarget::Timeout => {
                let (t, f, u) = table.timeouts().triple();
                Reply::Timeout {
                    tcp: t.as_secs(),
                    tcpfin: f.as_secs(),
                    udp: u.as_secs(),
                }
            }
            ListTarget::Daemon => Reply::Daemons { daemons: vec![] },
        },
        AdmCommand::StartDaemon(_) | AdmCommand::StopDaemon(..) => Reply::failed(
            "connection synchronisation daemons are not available in this version of Fulcrum\n",
            255,
        ),
        AdmCommand::Restore => Reply::failed("-R is sent as the commands it reads\n", 255),
    }
}

/// Split a `-R` line into words (`config_stream_read`): white space separates,
/// double quotes group.
fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// One step of an invocation, in order: a command for the table, or
/// something the command line itself prints (help, version, a parse error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A command, answered by one [`Reply`].
    Run(AdmCommand),
    /// Printed as it is.
    Print(Outcome),
}

/// What an ipvsadm invocation asks for, parsed where it is typed (names
/// resolved by `r`): with no arguments a listing, for `-R` the commands read
/// from `stdin` (up to the line that ends a restore, as ipvsadm stops there).
pub fn plan(program: &str, args: &[String], stdin: &str, r: &dyn Resolver) -> Vec<Step> {
    if args.is_empty() {
        return vec![Step::Run(AdmCommand::List(ListArgs {
            target: ListTarget::All,
            format: Format::default(),
        }))];
    }
    let printed = |text: String| {
        Step::Print(Outcome {
            stdout: text,
            ..Default::default()
        })
    };
    match parse_args(program, args, r) {
        Ok(Invocation::Help) => vec![printed(usage(program))],
        Ok(Invocation::Version) => vec![printed(version())],
        Ok(Invocation::Command(AdmCommand::Restore)) => {
            let mut steps = Vec::new();
            for line in stdin.lines() {
                let words = split_line(line);
                if words.is_empty() {
                    continue;
                }
                match parse_args(program, &words, r) {
                    // A nested -R would loop for ever: ipvsadm refuses it.
                    Ok(Invocation::Command(AdmCommand::Restore)) => {
                        steps.push(Step::Print(Outcome::err(
                            format!(
                                "Try `{program} -h' or '{program} --help' for more information.\n"
                            ),
                            255,
                        )));
                        return steps;
                    }
                    Ok(Invocation::Command(c)) => steps.push(Step::Run(c)),
                    Ok(Invocation::Help) => steps.push(printed(usage(program))),
                    Ok(Invocation::Version) => steps.push(printed(version())),
                    Err(e) => {
                        // Validation errors end ipvsadm at once; popt errors
                        // only fail the line.
                        let ends = e.exit_code != 255 || e.message.starts_with("Try ");
                        steps.push(Step::Print(Outcome::err(e.message, e.exit_code)));
                        if ends {
                            return steps;
                        }
                    }
                }
            }
            steps
        }
        Ok(Invocation::Command(c)) => vec![Step::Run(c)],
        Err(e) => vec![Step::Print(Outcome::err(e.message, e.exit_code))],
    }
}

/// The commands of a plan, in order: what the client sends the director.
pub fn commands(steps: &[Step]) -> Vec<AdmCommand> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Run(c) => Some(c.clone()),
            Step::Print(_) => None,
        })
        .collect()
}

/// What ipvsadm prints for a plan whose commands were answered by
/// `replies`, one each in order: every step's output in turn, the exit
/// status the last step's. A command left unanswered fails with a message.
pub fn render(steps: &[Step], replies: Vec<Reply>, r: &dyn Resolver) -> Outcome {
    let mut all = Outcome::default();
    let mut replies = replies.into_iter();
    for step in steps {
        let o = match step {
            Step::Print(o) => o.clone(),
            Step::Run(c) => match replies.next() {
                Some(reply) => reply.render(c, r),
                None => Outcome::err("the director did not answer this command\n", 255),
            },
        };
        all.stdout.push_str(&o.stdout);
        all.stderr.push_str(&o.stderr);
        all.exit_code = o.exit_code;
    }
    all
}

/// Run a whole ipvsadm invocation in one place: parse, execute, and for
/// `-R` read the commands from `stdin`. With no arguments, list the table as
/// ipvsadm does.
pub fn run(
    program: &str,
    args: &[String],
    stdin: &str,
    table: &mut Table,
    r: &dyn Resolver,
    now: Duration,
) -> Outcome {
    run_with(
        program,
        args,
        stdin,
        table,
        r,
        now,
        &|_: &AdmCommand, _: &Table| None,
    )
}

/// A check run before each command touches the table: `Some(reply)`
/// answers the command instead.
pub type Veto<'a> = &'a dyn Fn(&AdmCommand, &Table) -> Option<Reply>;

/// Answer a director's commands in order: each checked ([`validate`]),
/// offered to `veto` (a data plane answering what only it knows or refusing
/// what it cannot forward), then applied to the table.
pub fn answer(cmds: &[AdmCommand], table: &mut Table, now: Duration, veto: Veto<'_>) -> Vec<Reply> {
    cmds.iter()
        .map(|c| match validate(c) {
            Err(e) => Reply::failed(e.message, e.exit_code),
            Ok(()) => veto(c, table).unwrap_or_else(|| execute(c, table, now)),
        })
        .collect()
}

/// [`run`], with a veto consulted before every command (also each line of
/// `-R`).
pub fn run_with(
    program: &str,
    args: &[String],
    stdin: &str,
    table: &mut Table,
    r: &dyn Resolver,
    now: Duration,
    veto: Veto<'_>,
) -> Outcome {
    let steps = plan(program, args, stdin, r);
    let replies = answer(&commands(&steps), table, now, veto);
    render(&steps, replies, r)
}
