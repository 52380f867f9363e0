//! Running ipvsadm commands against a [`Table`]: the kernel's answers turned
//! into ipvsadm's messages and exit codes.

use std::time::Duration;

use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{DestSpec, ServiceSpec, Table, TableError};

use super::parse::{AdmCommand, Format, Invocation, ListTarget, parse_args, usage, version};
use super::render::{
    ConnEntry, Header, ServiceEntry, render_conns, render_daemons, render_list, render_timeout,
};
use super::resolve::Resolver;

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

fn op(r: Result<(), TableError>) -> Outcome {
    match r {
        Ok(()) => Outcome::default(),
        Err(e) => Outcome::err(format!("{}\n", strerror(&e)), 255),
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
            expires: c.expires.saturating_sub(now).as_secs(),
            pe: None,
        })
        .collect()
}

/// Apply one command to the table (`-R` is handled by [`run`]).
pub fn execute(cmd: &AdmCommand, table: &mut Table, r: &dyn Resolver, now: Duration) -> Outcome {
    let svc_spec = |a: &super::parse::SvcArgs| -> Result<ServiceSpec, Outcome> {
        let kind: SchedulerKind = a
            .scheduler
            .parse()
            .map_err(|_| Outcome::err("Scheduler or persistence engine not found\n", 255))?;
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
            Outcome::default()
        }
        AdmCommand::AddDest(k, d) => op(table.add_dest(k, dest_spec(d)).map(|_| ())),
        AdmCommand::EditDest(k, d) => op(table.edit_dest(k, dest_spec(d))),
        AdmCommand::DeleteDest(k, addr, port) => op(table.delete_dest(k, addr, *port)),
        AdmCommand::Zero(k) => op(table.zero(k.as_ref())),
        AdmCommand::SetTimeout(tcp, fin, udp) => {
            let s = |v: &u32| Duration::from_secs(u64::from(*v));
            table.set_timeouts(s(tcp), s(fin), s(udp));
            Outcome::default()
        }
        AdmCommand::Save { numeric } => {
            let f = Format {
                rule: true,
                numeric: *numeric,
                ..Default::default()
            };
            Outcome {
                stdout: render_list(&entries(table), &f, None, r),
                ..Default::default()
            }
        }
        AdmCommand::List(l) => match l.target {
            ListTarget::All => Outcome {
                stdout: render_list(&entries(table), &l.format, Some(Header::default()), r),
                ..Default::default()
            },
            ListTarget::Service(k) => match table.service(&k) {
                Some(s) => Outcome {
                    stdout: render_list(&[ServiceEntry::from_service(s)], &l.format, None, r),
                    ..Default::default()
                },
                None => Outcome::err("No such service\n", 1),
            },
            ListTarget::Connections => Outcome {
                stdout: render_conns(&conn_entries(table, now), &l.format, r),
                ..Default::default()
            },
            ListTarget::Timeout => {
                let (t, f, u) = table.timeouts().triple();
                Outcome {
                    stdout: render_timeout(t.as_secs(), f.as_secs(), u.as_secs()),
                    ..Default::default()
                }
            }
            ListTarget::Daemon => Outcome {
                stdout: render_daemons(&[]),
                ..Default::default()
            },
        },
        AdmCommand::StartDaemon(_) | AdmCommand::StopDaemon(..) => Outcome::err(
            "connection synchronisation daemons are not available in this version of Fulcrum\n",
            255,
        ),
        AdmCommand::Restore => Outcome::err("-R must be handled by run()\n", 255),
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

/// Run a whole ipvsadm invocation: parse, execute, and for `-R` read the
/// commands from `stdin`. With no arguments, list the table as ipvsadm does.
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

/// A check run before each command touches the table: `Some(outcome)`
/// refuses the command with that outcome.
pub type Veto<'a> = &'a dyn Fn(&AdmCommand, &Table) -> Option<Outcome>;

/// [`run`], with a veto consulted before every command (also each line of
/// `-R`). A director uses it to refuse what its data plane cannot do.
pub fn run_with(
    program: &str,
    args: &[String],
    stdin: &str,
    table: &mut Table,
    r: &dyn Resolver,
    now: Duration,
    veto: Veto<'_>,
) -> Outcome {
    let exec = |c: &AdmCommand, table: &mut Table| match veto(c, table) {
        Some(o) => o,
        None => execute(c, table, r, now),
    };
    if args.is_empty() {
        return Outcome {
            stdout: render_list(
                &entries(table),
                &Format::default(),
                Some(Header::default()),
                r,
            ),
            ..Default::default()
        };
    }
    match parse_args(program, args, r) {
        Ok(Invocation::Help) => Outcome {
            stdout: usage(program),
            ..Default::default()
        },
        Ok(Invocation::Version) => Outcome {
            stdout: version(),
            ..Default::default()
        },
        Ok(Invocation::Command(AdmCommand::Restore)) => {
            let mut all = Outcome::default();
            for line in stdin.lines() {
                let words = split_line(line);
                if words.is_empty() {
                    continue;
                }
                let o = match parse_args(program, &words, r) {
                    // A nested -R would loop for ever: ipvsadm refuses it.
                    Ok(Invocation::Command(AdmCommand::Restore)) => {
                        let o = Outcome::err(
                            format!(
                                "Try `{program} -h' or '{program} --help' for more information.\n"
                            ),
                            255,
                        );
                        all.stderr.push_str(&o.stderr);
                        all.exit_code = 255;
                        return all;
                    }
                    Ok(Invocation::Command(c)) => exec(&c, table),
                    Ok(Invocation::Help) => Outcome {
                        stdout: usage(program),
                        ..Default::default()
                    },
                    Ok(Invocation::Version) => Outcome {
                        stdout: version(),
                        ..Default::default()
                    },
                    Err(e) => {
                        all.stderr.push_str(&e.message);
                        all.exit_code = e.exit_code;
                        // Validation errors end ipvsadm at once; popt errors
                        // only fail the line.
                        if e.exit_code != 255 || e.message.starts_with("Try ") {
                            return all;
                        }
                        continue;
                    }
                };
                all.stdout.push_str(&o.stdout);
                all.stderr.push_str(&o.stderr);
                all.exit_code = o.exit_code;
            }
            all
        }
        Ok(Invocation::Command(c)) => exec(&c, table),
        Err(e) => Outcome::err(e.message, e.exit_code),
    }
}
