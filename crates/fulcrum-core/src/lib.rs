//! The IPVS model at the heart of Fulcrum.
//!
//! Everything in this crate behaves like the Linux kernel's IP Virtual Server
//! (`net/netfilter/ipvs/`) and is deterministic: no sockets, no threads and no
//! clock. Time is always a parameter (`now`, a [`Duration`](std::time::Duration)
//! since an epoch the caller chooses, e.g. the daemon's start), so every
//! behaviour can be replayed in tests.
//!
//! - [`table::Table`]: virtual services and their real servers (dests), with the
//!   kernel's add/edit/delete rules and errors.
//! - [`sched`]: the 14 schedulers, each in its own file.
//! - [`conn`]: the connection table, TCP state tracking, active/inactive
//!   accounting, overload thresholds and persistence templates.
//! - [`estimator`]: the 2-second rate estimator with IPVS's fixed-point maths.
//! - [`snapshot`]: what a data plane schedules from without asking the table.

pub mod addr;
pub mod conn;
pub mod dest;
pub mod estimator;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod sync;
pub mod table;

pub use addr::{Family, Netmask};
pub use dest::{Dest, DestId, Forwarding, TunnelCsum, TunnelType};
pub use service::{Protocol, SchedFlags, Service, ServiceKey};
pub use sync::{SyncDaemon, SyncRole};
pub use table::{DestSpec, Observed, ServiceSpec, Table, TableError};
