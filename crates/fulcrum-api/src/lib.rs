//! Fulcrum's control language.
//!
//! [`ipvsadm`] speaks ipvsadm 1.31's command line: it parses an argument
//! vector into a typed [`ipvsadm::AdmCommand`] with ipvsadm's validation,
//! messages and exit codes, applies commands to a
//! [`Table`](fulcrum_core::Table) with the kernel's answers, and renders
//! every listing mode byte for byte. [`control`] is the protocol of the
//! director's control socket.

pub mod auth;
pub mod control;
pub mod ipvsadm;
pub mod state;
