//! ipvsadm 1.31, reproduced: command line, execution and listings.

mod exec;
mod parse;
mod render;
mod resolve;

pub use exec::{Outcome, Veto, conn_entries, entries, execute, run, run_with};
pub use parse::{
    AdmCommand, AdmError, DestArgs, Format, Invocation, ListArgs, ListTarget, SvcArgs, parse_args,
    usage, version,
};
pub use render::{
    ConnEntry, DestEntry, Header, ServiceEntry, print_largenum, render_conns, render_daemons,
    render_list, render_timeout, sort_entries,
};
pub use resolve::{NumericResolver, Resolver};
