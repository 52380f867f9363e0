//! Fulcrum's XDP data plane: the BPF program (C in `bpf/`, compiled by
//! clang when the crate is built) and its loader, on aya.
//!
//! This stage is the classifier every later one builds on: each frame is
//! parsed (Ethernet, one VLAN tag, IPv4 with options, IPv6, TCP/UDP/SCTP
//! ports) and looked up in the `services` map the controller publishes the
//! table into; a virtual service's packets are counted against it (per CPU,
//! summed here), everything else is counted by why it is not one. It
//! forwards nothing yet: every verdict is `XDP_PASS`. It attaches to an
//! interface natively, or in the generic path where the driver refuses.
//!
//! Without clang (and libbpf's headers) at build time the crate still
//! builds: [`program`] then says what to install.

use aya::Ebpf;
use aya::maps::{HashMap, MapData, PerCpuArray};
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode};
use fulcrum_core::{Protocol, ServiceKey};

/// The compiled BPF object (empty when clang was missing at build time).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fulcrum.bpf.o"));

/// The most services the `services` map holds.
pub const MAX_SERVICES: u32 = 65536;

/// The name of the XDP program in the object.
const PROGRAM: &str = "fulcrum_xdp";

/// `XDP_PASS`: the frame goes on to the kernel.
pub const XDP_PASS: u32 = 2;

/// How the program runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic path (slower): the driver refused native.
    Generic,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// This build has no BPF program.
    #[error(
        "this Fulcrum was built without its XDP program ({0}); install clang and libbpf-dev and rebuild"
    )]
    NotBuilt(&'static str),
    /// The kernel refused the program or a map.
    #[error("{what}: {why}")]
    Kernel {
        /// What was being done.
        what: &'static str,
        /// The error.
        why: String,
    },
    /// Not an interface name.
    #[error("`{0}` is not an interface name (at most 15 characters, no `/`, space or NUL)")]
    BadInterface(String),
    /// Too many services for the map.
    #[error("{0} services: the XDP plane holds at most {MAX_SERVICES}")]
    TooMany(usize),
}

fn kernel(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> XdpError {
    move |e| XdpError::Kernel {
        what,
        why: e.to_string(),
    }
}

/// The object's XDP program, for `what`.
fn xdp_mut<'a>(ebpf: &'a mut Ebpf, what: &'static str) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| missing(what, PROGRAM))?
        .try_into()
        .map_err(|e: ProgramError| kernel(what)(&e))
}

/// The object's XDP program, read-only, for `what`.
fn xdp<'a>(ebpf: &'a Ebpf, what: &'static str) -> Result<&'a Xdp, XdpError> {
    ebpf.program(PROGRAM)
        .ok_or_else(|| missing(what, PROGRAM))?
        .try_into()
        .map_err(|e: ProgramError| kernel(what)(&e))
}

/// The object's map `name`, for `what`.
fn map<'a>(ebpf: &'a Ebpf, name: &str, what: &'static str) -> Result<&'a aya::maps::Map, XdpError> {
    ebpf.map(name).ok_or_else(|| missing(what, name))
}

fn missing(what: &'static str, name: &str) -> XdpError {
    XdpError::Kernel {
        what,
        why: format!("no `{name}` in the object"),
    }
}

/// The compiled BPF object.
///
/// # Errors
/// [`XdpError::NotBuilt`] when clang was missing at build time, saying why.
pub fn program() -> Result<&'static [u8], XdpError> {
    if OBJECT.is_empty() {
        Err(XdpError::NotBuilt(env!("FULCRUM_XDP_MISSING")))
    } else {
        Ok(OBJECT)
    }
}

/// Why a packet was not a virtual service's (the `exceptions` counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exception {
    /// Not IPv4 or IPv6 (ARP, LLDP, …).
    NotIp,
    /// Shorter than its headers say, or a bad header length.
    Malformed,
    /// An IPv4 fragment: no ports to classify by.
    Fragment,
    /// IPv6 with extension headers.
    Ipv6Extension,
    /// Not TCP, UDP or SCTP.
    OtherProtocol,
    /// TCP, UDP or SCTP to no virtual service.
    NoService,
}

impl Exception {
    /// Every kind, in the map's order.
    pub const ALL: [Exception; 6] = [
        Exception::NotIp,
        Exception::Malformed,
        Exception::Fragment,
        Exception::Ipv6Extension,
        Exception::OtherProtocol,
        Exception::NoService,
    ];

    /// For people.
    pub fn name(self) -> &'static str {
        match self {
            Exception::NotIp => "not IP",
            Exception::Malformed => "malformed",
            Exception::Fragment => "IPv4 fragment",
            Exception::Ipv6Extension => "IPv6 extension header",
            Exception::OtherProtocol => "not TCP, UDP or SCTP",
            Exception::NoService => "no virtual service",
        }
    }
}

/// The `services` key of a virtual service: family, protocol, port
/// (network order) and address, 20 bytes as `struct svc_key`. `None` for a
/// fwmark service: XDP runs before anything marks a packet.
pub fn service_key(key: &ServiceKey) -> Option<[u8; 20]> {
    let ServiceKey::Addr { proto, addr, port } = *key else {
        return None;
    };
    let mut k = [0u8; 20];
    k[1] = match proto {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    };
    k[2..4].copy_from_slice(&port.to_be_bytes());
    match addr {
        std::net::IpAddr::V4(a) => {
            k[0] = 4;
            k[4..8].copy_from_slice(&a.octets());
        }
        std::net::IpAddr::V6(a) => {
            k[0] = 6;
            k[4..20].copy_from_slice(&a.octets());
        }
    }
    Some(k)
}

/// The classifier, loaded into the kernel (not attached to an interface).
#[derive(Debug)]
pub struct Classifier {
    ebpf: Ebpf,
}

impl Classifier {
    /// Load the program and its maps into the kernel.
    ///
    /// # Errors
    /// No program in this build, or the kernel refusing it (no BPF, no
    /// privilege: it needs root or CAP_BPF with CAP_NET_ADMIN).
    pub fn load() -> Result<Classifier, XdpError> {
        let mut ebpf = Ebpf::load(program()?).map_err(|e| kernel("loading the XDP object")(&e))?;
        xdp_mut(&mut ebpf, "loading the XDP program")?
            .load()
            .map_err(|e| kernel("loading the XDP program")(&e))?;
        Ok(Classifier { ebpf })
    }

    fn services(&mut self) -> Result<HashMap<&mut MapData, [u8; 20], u32>, XdpError> {
        let map = self
            .ebpf
            .map_mut("services")
            .ok_or_else(|| missing("the services map", "services"))?;
        HashMap::try_from(map).map_err(|e| kernel("the services map")(&e))
    }

    /// Make the `services` map hold exactly `services` (each with its
    /// counters' index), changing only what differs: a service present
    /// before and after keeps its entry. fwmark services are skipped.
    ///
    /// # Errors
    /// More than [`MAX_SERVICES`], an index out of range, or the kernel
    /// refusing an update.
    pub fn set_services(&mut self, services: &[(ServiceKey, u32)]) -> Result<(), XdpError> {
        if services.len() > MAX_SERVICES as usize {
            return Err(XdpError::TooMany(services.len()));
        }
        let want: std::collections::HashMap<[u8; 20], u32> = services
            .iter()
            .filter_map(|(k, i)| service_key(k).map(|k| (k, *i)))
            .collect();
        if let Some(i) = want.values().find(|i| **i >= MAX_SERVICES) {
            return Err(XdpError::Kernel {
                what: "the services map",
                why: format!("counter index {i} out of range"),
            });
        }
        let mut map = self.services()?;
        let have: Vec<[u8; 20]> = map.keys().filter_map(Result::ok).collect();
        for k in have.iter().filter(|k| !want.contains_key(*k)) {
            map.remove(k)
                .map_err(|e| kernel("removing a service")(&e))?;
        }
        for (k, i) in &want {
            if map.get(k, 0).ok() != Some(*i) {
                map.insert(k, i, 0)
                    .map_err(|e| kernel("adding a service")(&e))?;
            }
        }
        Ok(())
    }

    /// A service's packets and bytes, summed over the CPUs.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn service_counters(&self, index: u32) -> Result<(u64, u64), XdpError> {
        let map = map(&self.ebpf, "svc_stats", "the counters map")?;
        let arr: PerCpuArray<&MapData, [u64; 2]> =
            PerCpuArray::try_from(map).map_err(|e| kernel("the counters map")(&e))?;
        let per_cpu = arr
            .get(&index, 0)
            .map_err(|e| kernel("reading counters")(&e))?;
        Ok(per_cpu
            .iter()
            .fold((0, 0), |(p, b), c| (p + c[0], b + c[1])))
    }

    /// The packets that were no virtual service's, by why, summed over the
    /// CPUs.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn exceptions(&self) -> Result<Vec<(Exception, u64)>, XdpError> {
        let map = map(&self.ebpf, "exceptions", "the exceptions map")?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| kernel("the exceptions map")(&e))?;
        Exception::ALL
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let v = arr
                    .get(&(i as u32), 0)
                    .map_err(|err| kernel("reading exceptions")(&err))?;
                Ok((*e, v.iter().sum()))
            })
            .collect()
    }

    /// Attach the program to `interface` (of this thread's network
    /// namespace): in the driver, or — when the driver refuses — in the
    /// kernel's generic path, which the answer says (the caller warns).
    /// It stays attached until the classifier is dropped.
    ///
    /// # Errors
    /// A name that is not an interface's, no such interface, or the kernel
    /// refusing both modes (the error of the generic attempt).
    pub fn attach(&mut self, interface: &str) -> Result<Attached, XdpError> {
        if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ', '\0', ':'])
        {
            return Err(XdpError::BadInterface(interface.to_string()));
        }
        let prog = xdp_mut(&mut self.ebpf, "attaching the XDP program")?;
        if prog.attach(interface, XdpMode::Driver).is_ok() {
            return Ok(Attached::Native);
        }
        prog.attach(interface, XdpMode::Skb)
            .map(|_| Attached::Generic)
            .map_err(|e| XdpError::Kernel {
                what: "attaching the XDP program",
                why: format!("{interface}: {e}"),
            })
    }

    /// Run the program on one frame in the kernel (`BPF_PROG_TEST_RUN`, no
    /// interface needed): its verdict and the frame as it left.
    ///
    /// # Errors
    /// The kernel refusing the run.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let prog = xdp(&self.ebpf, "running the XDP program")?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        let r = prog
            .test_run(opts)
            .map_err(|e| kernel("running the XDP program")(&e))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_are_laid_out_as_the_program_reads_them() {
        let k = service_key(&ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.100".parse().unwrap(),
            port: 80,
        })
        .unwrap();
        assert_eq!(&k[..8], &[4, 6, 0, 80, 10, 0, 0, 100]);
        assert!(k[8..].iter().all(|b| *b == 0));
        let k = service_key(&ServiceKey::Addr {
            proto: Protocol::Sctp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 5060,
        })
        .unwrap();
        assert_eq!(&k[..4], &[6, 132, 0x13, 0xc4]);
        assert_eq!(&k[4..6], &[0x20, 0x01]);
        assert_eq!(k[19], 1);
        assert_eq!(
            service_key(&ServiceKey::Fwmark {
                mark: 1,
                family: fulcrum_core::Family::V4
            }),
            None
        );
    }
}
