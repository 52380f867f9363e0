//! `fulcrum`: the command-line entry point. Invoked under the name
//! `ipvsadm`, it behaves as `fulcrum adm`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fulcrum::control::client;
use fulcrum::paths::default_control_path;
use fulcrum_api::control::Request;

/// Fulcrum: a high-availability Layer-4 load balancer in the tradition of
/// LVS, Piranha and keepalived.
#[derive(Debug, Parser)]
#[command(name = "fulcrum", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the director: serve the virtual servers of an lvs.cf.
    Run {
        /// The configuration file (default: the first of /etc/fulcrum/lvs.cf,
        /// /etc/sysconfig/ha/lvs.cf and /etc/lvs.cf that exists).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// The control socket (default: $FULCRUM_CONTROL, /run/fulcrum/control.sock
        /// for root, else $XDG_RUNTIME_DIR/fulcrum/control.sock).
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
        /// Data-plane worker threads (default: one per CPU).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
        /// Serve Prometheus metrics at http://ADDR:PORT/metrics; a port
        /// alone listens on 127.0.0.1 only.
        #[arg(long, value_name = "[ADDR:]PORT", value_parser = fulcrum::metrics::parse_listen)]
        metrics: Option<SocketAddr>,
        /// Serve the web console and JSON API at http://ADDR:PORT/ (over
        /// the file's `console`); a port alone listens on 127.0.0.1 only.
        #[arg(long, value_name = "[ADDR:]PORT", value_parser = fulcrum::metrics::parse_listen)]
        console: Option<SocketAddr>,
        /// On exit, leave the kernel's IPVS table, the sync daemon and the
        /// floating addresses in place, and hand nothing over to a backup:
        /// forwarding goes on until the next `fulcrum run` adopts them (an
        /// upgrade). Without it, exit removes what the director installed.
        #[arg(long)]
        keep_forwarding: bool,
    },
    /// Administer the running director with ipvsadm's commands, options and
    /// output (`fulcrum adm -L -n`, `fulcrum adm -a -t VIP:80 -r RIP -m`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Adm {
        /// The director's control socket.
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
        /// ipvsadm arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Restart the running director without refusing or cutting a
    /// connection: it starts a new director from the same program file (so
    /// an upgraded binary takes over) with the same arguments, hands it its
    /// listening sockets once it serves, and finishes its own open
    /// connections (up to `drain_timeout`). Proxy plane.
    Restart {
        /// The director's control socket.
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
    },
    /// Show the running director's state.
    Status {
        /// The director's control socket.
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
    },
    /// Drain, disable or enable a real server of the running director, named
    /// as lvs.cf names it (`fulcrum server web rs1 drain`). Lasts until the
    /// director stops; edit `active` or `weight` in lvs.cf to keep it.
    Server {
        /// The `virtual` block's name.
        #[arg(value_name = "VIRTUAL")]
        virtual_server: String,
        /// The `server` block's name.
        #[arg(value_name = "SERVER")]
        server: String,
        /// drain (weight 0: no new connections, open ones go on), disable
        /// (out of the table), or enable (its checks decide again).
        #[arg(value_name = "ACTION")]
        action: fulcrum_api::state::ServerAction,
        /// The director's control socket.
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
    },
    /// Add or change a web-console user (asks for the password, or reads
    /// one line from standard input), make an API token, or remove either.
    Passwd {
        /// The user's (or token's) name.
        name: String,
        /// The users file.
        #[arg(long, value_name = "PATH", default_value = fulcrum::console::DEFAULT_USERS)]
        users: PathBuf,
        /// admin (may change things) or viewer (read-only).
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: fulcrum_api::auth::Role,
        /// Make an API token instead: printed once, only its hash kept.
        #[arg(long)]
        token: bool,
        /// Remove the user (or, with --token, the token).
        #[arg(long)]
        delete: bool,
    },
    /// Print the lvs.cf equivalent of a keepalived.conf or an ldirectord.cf,
    /// with a note (file:line) for each setting it cannot carry over.
    Import {
        /// The file to import.
        file: PathBuf,
        /// What it is (default: from its name, else its content).
        #[arg(long, value_enum)]
        from: Option<fulcrum::import::From>,
        /// Write the lvs.cf here instead of standard output.
        #[arg(long, short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell):
    /// `fulcrum completions bash > /etc/bash_completion.d/fulcrum`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages into DIR: fulcrum.1, one per command
    /// (fulcrum-run.1, …), and lvs.cf.5.
    #[command(hide = true)]
    Manpages {
        /// Where to write them.
        dir: PathBuf,
    },
    /// Make the running director re-read its configuration (as SIGHUP does).
    Reload {
        /// The director's control socket.
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
    },
    /// Validate an lvs.cf: print every problem with file:line:col, exit 1 on
    /// any error.
    Check {
        /// The configuration file (default: the first of /etc/fulcrum/lvs.cf,
        /// /etc/sysconfig/ha/lvs.cf and /etc/lvs.cf that exists).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
        /// Also print the IPVS table the file describes, as `ipvsadm -S -n`
        /// would.
        #[arg(long)]
        save: bool,
    },
    /// A minimal real server: HTTP 200 with body `NAME\n`, or with --udp a
    /// `NAME\n` reply to every datagram.
    Realserver {
        /// Address and port to listen on.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: SocketAddr,
        /// The name to answer with (default: the listen address).
        #[arg(long)]
        name: Option<String>,
        /// Answer UDP instead of HTTP.
        #[arg(long)]
        udp: bool,
    },
    /// Prepare this host as a real server for direct routing or tunnelling:
    /// the virtual addresses on `lo` (or `tunl0`) without answering ARP for
    /// them. Records what it changes; `--undo` puts it back.
    RealserverSetup {
        /// How the director forwards: direct routing (-g) or IPIP tunnelling (-i).
        #[arg(long, value_enum, required_unless_present = "undo")]
        mode: Option<fulcrum::rs_setup::Mode>,
        /// Tunnelling: who takes the outer header off — the kernel's ipip
        /// module, or Fulcrum's XDP program (kernels without ipip; IPv6 too).
        #[arg(long, value_enum, default_value = "kernel")]
        decap: fulcrum::rs_setup::Decap,
        /// The interface tunnelled packets arrive on, for `--decap xdp`
        /// (default: the default route's).
        #[arg(long, value_name = "IFACE")]
        interface: Option<String>,
        /// With `--decap xdp`: take GUE on this UDP port too (the
        /// director's `tunnel_type = gue`, `tunnel_port`).
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        gue_port: Option<u16>,
        /// A virtual address (repeatable).
        #[arg(long = "vip", value_name = "ADDRESS", required_unless_present = "undo")]
        vips: Vec<std::net::IpAddr>,
        /// Only say what is missing (exit 1 if anything is).
        #[arg(long)]
        check: bool,
        /// Put back what earlier runs changed.
        #[arg(long, conflicts_with = "check")]
        undo: bool,
        /// Where the changes are recorded.
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/run/fulcrum/realserver-setup"
        )]
        state: PathBuf,
    },
    /// Run on a real server: answer HAProxy-style agent checks with a weight
    /// from the host's load (`up ready 75%`), or what an operator writes to
    /// the state file (`drain`, `maint`, `50%`).
    Agent {
        /// Address and port to answer on.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: SocketAddr,
        /// A file whose first line, when present and not empty, is sent
        /// instead.
        #[arg(long, value_name = "PATH")]
        state_file: Option<PathBuf>,
        /// Where the weight comes from: idle CPU or the load average.
        #[arg(long, value_enum, default_value = "cpu")]
        source: AgentSource,
    },
    /// Print the MD5 digest of a page's body for `digest` in lvs.cf, as
    /// keepalived's genhash does (same options).
    Genhash {
        /// The real server's address.
        #[arg(short = 's', long = "server", value_name = "ADDRESS")]
        server: std::net::IpAddr,
        /// Its port.
        #[arg(short = 'p', long = "port", default_value_t = 80)]
        port: u16,
        /// The path to fetch.
        #[arg(short = 'u', long = "url", value_name = "PATH")]
        url: String,
        /// Use TLS (the certificate is not verified).
        #[arg(short = 'S', long = "use-ssl")]
        ssl: bool,
        /// Send this host name as the Host header (and, with -I, in SNI).
        #[arg(short = 'V', long = "use-virtualhost", value_name = "HOST")]
        virtualhost: Option<String>,
        /// Send the virtual host in SNI (TLS only).
        #[arg(short = 'I', long = "use-sni")]
        sni: bool,
        /// Also print the reply's header.
        #[arg(short = 'v', long)]
        verbose: bool,
        /// Give up after this many seconds.
        #[arg(short = 't', long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// A director on 127.0.0.1:8080 in front of three local real servers
    /// (weights 2, 1, 1, wlc). No root needed; Ctrl-C stops it.
    Demo {
        /// Where the director listens.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The control socket (default as for `fulcrum run`): two demos at
        /// once need two.
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
        /// Serve the web console too (user admin, a password printed at
        /// start); a port alone listens on 127.0.0.1.
        #[arg(long, value_name = "[ADDR:]PORT", value_parser = fulcrum::metrics::parse_listen)]
        console: Option<SocketAddr>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AgentSource {
    Cpu,
    Load,
}

/// Write fulcrum.1, a page per command and lvs.cf.5 into `dir`; how many.
fn manpages(dir: &std::path::Path) -> Result<usize, String> {
    let write = |name: &str, text: &[u8]| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let render = |c: clap::Command| -> Result<Vec<u8>, String> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .map_err(|e| format!("cannot render a manual page: {e}"))?;
        Ok(buf)
    };
    let mut n = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("fulcrum-{}", sub.get_name());
        write(
            &format!("{name}.1"),
            &render(sub.clone().name(name.clone()))?,
        )?;
        n += 1;
    }
    write("fulcrum.1", &render(cmd)?)?;
    write(
        "lvs.cf.5",
        fulcrum::manual::lvs_cf_page(env!("CARGO_PKG_VERSION")).as_bytes(),
    )?;
    Ok(n + 2)
}

/// `--config`, or the first configuration file found in the usual places.
fn config_or_default(config: Option<PathBuf>) -> Result<PathBuf, String> {
    match config {
        Some(c) => Ok(c),
        None => fulcrum::paths::find_config(std::path::Path::new("/")),
    }
}

fn parse_role(s: &str) -> Result<fulcrum_api::auth::Role, String> {
    s.parse()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(c.clamp(0, 255) as u8)
}

/// `ipvsadm ARGS` / `fulcrum adm ARGS`: one request to the director. `-R`
/// reads its commands from standard input here and sends them along.
fn adm(control: Option<PathBuf>, args: Vec<String>, program: &str) -> ExitCode {
    let restore = args.first().is_some_and(|a| {
        a == "-R"
            || a == "--restore"
            || (a.starts_with('-') && !a.starts_with("--") && a.contains('R'))
    });
    let mut stdin = String::new();
    if restore {
        use std::io::Read as _;
        let _ = std::io::stdin().read_to_string(&mut stdin);
    }
    let path = control.unwrap_or_else(default_control_path);
    code(fulcrum::control::adm_client(&path, args, stdin, program))
}

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "ipvsadm")
    {
        return adm(None, std::env::args().skip(1).collect(), "ipvsadm");
    }
    fulcrum::restart::remember_program();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, save } => match config_or_default(config) {
            Ok(config) => fulcrum::check::run(&config, save),
            Err(e) => {
                eprintln!("fulcrum check: {e}");
                ExitCode::from(1)
            }
        },
        Command::Run {
            config,
            control,
            workers,
            metrics,
            console,
            keep_forwarding,
        } => {
            fulcrum::run::init_logging();
            let config = match config_or_default(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("fulcrum: {e}");
                    return ExitCode::from(1);
                }
            };
            let Some((cfg, text)) = fulcrum::run::load(&config) else {
                return ExitCode::from(1);
            };
            let control = control.unwrap_or_else(default_control_path);
            let workers = workers.unwrap_or_else(fulcrum::controller::default_workers);
            code(runtime().block_on(fulcrum::run::director(
                Some(config),
                Some(cfg),
                Some(text),
                "",
                control,
                workers,
                metrics,
                console,
                keep_forwarding,
                |_| {},
            )))
        }
        Command::Adm { control, args } => adm(control, args, "fulcrum adm"),
        Command::Restart { control } => code(client(
            &control.unwrap_or_else(default_control_path),
            Request::Restart,
            "fulcrum restart",
        )),
        Command::Status { control } => code(client(
            &control.unwrap_or_else(default_control_path),
            Request::Status,
            "fulcrum status",
        )),
        Command::Server {
            virtual_server,
            server,
            action,
            control,
        } => code(client(
            &control.unwrap_or_else(default_control_path),
            Request::Server {
                virtual_server,
                server,
                action,
            },
            "fulcrum server",
        )),
        Command::Passwd {
            name,
            users,
            role,
            token,
            delete,
        } => code(fulcrum::passwd::run(&users, &name, role, token, delete)),
        Command::Import { file, from, output } => {
            fulcrum::import::run(&file, from, output.as_deref())
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "fulcrum", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Manpages { dir } => match manpages(&dir) {
            Ok(n) => {
                eprintln!("fulcrum: {n} manual pages written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fulcrum: {e}");
                ExitCode::from(1)
            }
        },
        Command::Reload { control } => code(client(
            &control.unwrap_or_else(default_control_path),
            Request::Reload,
            "fulcrum reload",
        )),
        Command::RealserverSetup {
            mode,
            decap,
            interface,
            gue_port,
            vips,
            check,
            undo,
            state,
        } => code(
            runtime().block_on(fulcrum::rs_setup::run(fulcrum::rs_setup::Request {
                mode: mode.unwrap_or(fulcrum::rs_setup::Mode::Direct),
                decap,
                interface,
                gue_port,
                vips,
                check,
                undo,
                state,
            })),
        ),
        Command::Realserver { listen, name, udp } => {
            code(runtime().block_on(fulcrum::realserver::run(listen, name, udp)))
        }
        Command::Agent {
            listen,
            state_file,
            source,
        } => {
            let source = match source {
                AgentSource::Cpu => fulcrum::agent::Source::Cpu,
                AgentSource::Load => fulcrum::agent::Source::Load,
            };
            code(runtime().block_on(fulcrum::agent::run(listen, state_file, source)))
        }
        Command::Genhash {
            server,
            port,
            url,
            ssl,
            virtualhost,
            sni,
            verbose,
            timeout,
        } => code(
            runtime().block_on(fulcrum::check::genhash(fulcrum::check::Genhash {
                addr: SocketAddr::new(server, port),
                path: url,
                tls: ssl,
                virtualhost,
                sni,
                verbose,
                timeout,
            })),
        ),
        Command::Demo {
            listen,
            control,
            console,
        } => {
            fulcrum::run::init_logging();
            code(runtime().block_on(fulcrum::demo::run(listen, control, console)))
        }
    }
}
