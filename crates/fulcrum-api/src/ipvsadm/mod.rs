//! ipvsadm 1.31, reproduced: command line, execution and listings.

mod exec;
mod parse;
mod render;
mod resolve;
mod validate;

pub use exec::{
    Outcome, Reply, Step, Veto, answer, commands, conn_entries, entries, execute, plan, render,
    run, run_with,
};
pub use parse::{
    AdmCommand, AdmError, DestArgs, Format, Invocation, ListArgs, ListTarget, SvcArgs, parse_args,
    usage, version,
};
pub use render::{
    ConnEntry, DestEntry, Header, ServiceEntry, print_largenum, render_conns, render_daemons,
    render_list, render_timeout, sort_entries,
};
pub use resolve::{NumericResolver, Resolver};
pub use validate::validate;

/// The program name ipvsadm's messages give, whichever command ran them.
pub const PROGRAM: &str = "ipvsadm";
