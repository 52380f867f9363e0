//! The `fulcrum` program's parts: the director (controller, control socket,
//! `run`), the command-line tools (`check`, `adm`, `status`), and the helpers
//! for trying Fulcrum out (`realserver`, `demo`).

pub mod addresses;
pub mod agent;
pub mod check;
pub mod console;
pub mod control;
pub mod controller;
pub mod dataplane;
pub mod demo;
pub mod import;
pub mod kernel;
pub mod limits;
pub mod logring;
pub mod manual;
pub mod metrics;
pub mod notify;
pub mod passwd;
pub mod paths;
pub mod privileges;
pub mod realserver;
pub mod resolver;
pub mod restart;
pub mod rs_setup;
pub mod run;
pub mod xdp;
pub mod xdp_sync;
