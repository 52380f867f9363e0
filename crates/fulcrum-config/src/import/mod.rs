//! Importers: a keepalived.conf or an ldirectord.cf turned into the
//! equivalent lvs.cf, with a note (`file:line`) for every setting that has no
//! equivalent, so an operator moving to Fulcrum knows exactly what did not
//! come along. Text in, text out: the caller reads and writes the files.

mod keepalived;
mod ldirectord;

use std::fmt::Write as _;

pub use keepalived::keepalived;
pub use ldirectord::ldirectord;

/// What an import made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// The lvs.cf text.
    pub text: String,
    /// One per setting that did not come across (or came across changed),
    /// in file order.
    pub notes: Vec<Note>,
}

/// A setting of the imported file that lvs.cf cannot say, or says
/// differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its line in the imported file, from 1.
    pub line: usize,
    /// What happened to it and what to do.
    pub message: String,
}

impl Imported {
    /// The notes as `file:line: message` lines.
    pub fn render(&self, file: &str) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "{file}:{}: {}", n.line, n.message);
        }
        s
    }
}

/// An lvs.cf being written: blocks in order, keys with values already in
/// lvs.cf's syntax.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) global: Vec<(String, String)>,
    pub(crate) virtuals: Vec<VirtualOut>,
}

#[derive(Debug, Default)]
pub(crate) struct VirtualOut {
    pub(crate) name: String,
    /// Where it came from, for a comment.
    pub(crate) origin: String,
    pub(crate) keys: Vec<(String, String)>,
    pub(crate) servers: Vec<ServerOut>,
}

#[derive(Debug, Default)]
pub(crate) struct ServerOut {
    pub(crate) name: String,
    pub(crate) keys: Vec<(String, String)>,
}

/// A value as lvs.cf writes it: bare when it can be, else quoted.
pub(crate) fn value(s: &str) -> String {
    crate::write::quote(s)
}

impl Out {
    pub(crate) fn render(&self, header: &str) -> String {
        let mut s = String::new();
        for l in header.lines() {
            let _ = writeln!(s, "# {l}");
        }
        for (k, v) in &self.global {
            let _ = writeln!(s, "{k} = {v}");
        }
        for v in &self.virtuals {
            let _ = writeln!(s, "\n# {}\nvirtual {} {{", v.origin, v.name);
            for (k, val) in &v.keys {
                let _ = writeln!(s, "\t{k} = {val}");
            }
            for r in &v.servers {
                let _ = writeln!(s, "\tserver {} {{", r.name);
                for (k, val) in &r.keys {
                    let _ = writeln!(s, "\t\t{k} = {val}");
                }
                s.push_str("\t}\n");
            }
            s.push_str("}\n");
        }
        s
    }
}

/// `host:port` with brackets for IPv6.
pub(crate) fn host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
