//! The driver: a generic-netlink socket to the kernel's IPVS, one request
//! at a time, each acknowledged (or a dump read to its end). Blocking:
//! callers on an async runtime run it on a blocking thread.

use std::net::IpAddr;

use fulcrum_core::{DestSpec, ServiceKey, ServiceSpec};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use crate::msg::{self, KernelDest, KernelService, cmd};
use crate::nl::{self, Builder, DecodeError, F_ACK, F_DUMP, F_REQUEST, GENL_ID_CTRL};

/// `CTRL_CMD_GETFAMILY`, `CTRL_ATTR_FAMILY_ID`, `CTRL_ATTR_FAMILY_NAME`.
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// How long a reply may take.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// `ENOENT`: what the controller answers for an unknown family.
const ENOENT: i32 = 2;

/// What went wrong talking to the kernel's IPVS.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The kernel has no IPVS (the `ip_vs` module is not there).
    #[error(
        "this kernel has no IPVS: the generic-netlink family IPVS is not registered (modprobe ip_vs, or use the proxy data plane)"
    )]
    NoIpvs,
    /// The socket failed.
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused a request.
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*.errno))]
    Kernel {
        /// What was asked.
        what: &'static str,
        /// The errno.
        errno: i32,
    },
    /// A reply that does not decode.
    #[error("netlink reply: {0}")]
    Decode(#[from] DecodeError),
}

impl IpvsError {
    /// The errno the kernel answered, if it refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IpvsError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// A connection to the kernel's IPVS.
#[derive(Debug)]
pub struct Ipvs {
    sock: Socket,
    family: u16,
    seq: u32,
}

impl Ipvs {
    /// Open a socket and find the IPVS family (loading `ip_vs` when the
    /// kernel has it as a module).
    ///
    /// # Errors
    /// [`IpvsError::NoIpvs`] when the kernel has no IPVS.
    pub fn open() -> Result<Ipvs, IpvsError> {
        let mut sock = Socket::new(NETLINK_GENERIC)?;
        // A kernel that never answers is an error, not a hang.
        socket2::SockRef::from(&sock).set_read_timeout(Some(REPLY_TIMEOUT))?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let mut ipvs = Ipvs {
            sock,
            family: 0,
            seq: 1,
        };
        ipvs.family = match ipvs.resolve() {
            Ok(f) => f,
            Err(IpvsError::NoIpvs) => {
                let _ = std::process::Command::new("modprobe")
                    .arg("ip_vs")
                    .stderr(std::process::Stdio::null())
                    .status();
                ipvs.resolve()?
            }
            Err(e) => return Err(e),
        };
        Ok(ipvs)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send `msg` (built with the next sequence number) and hand each
    /// reply to it to `on` until that returns an answer.
    fn exchange<T>(
        &mut self,
        build: impl FnOnce(u32) -> Vec<u8>,
        mut on: impl FnMut(nl::Message<'_>) -> Result<Option<T>, IpvsError>,
    ) -> Result<T, IpvsError> {
        let seq = self.next_seq();
        self.sock.send(&build(seq), 0)?;
        loop {
            let (buf, _) = self.sock.recv_from_full()?;
            for m in nl::messages(&buf) {
                let m = m?;
                if m.seq != seq {
                    continue; // a late answer to an earlier request
                }
                if let Some(answer) = on(m)? {
                    return Ok(answer);
                }
            }
        }
    }

    /// The IPVS family's id, from the generic-netlink controller.
    fn resolve(&mut self) -> Result<u16, IpvsError> {
        self.exchange(
            |seq| {
                let mut b = Builder::new(GENL_ID_CTRL, F_REQUEST, seq, CTRL_CMD_GETFAMILY, 1);
                b.string(CTRL_ATTR_FAMILY_NAME, msg::FAMILY_NAME);
                b.finish()
            },
            |m| {
                if m.ty == nl::NLMSG_ERROR {
                    return match m.error_code()? {
                        e if e == -ENOENT || e == 0 => Err(IpvsError::NoIpvs),
                        e => Err(IpvsError::Kernel {
                            what: "resolving the IPVS family",
                            errno: -e,
                        }),
                    };
                }
                for a in nl::attrs(m.genl()?.1) {
                    let a = a?;
                    if a.ty == CTRL_ATTR_FAMILY_ID {
                        return Ok(Some(a.u16("family id")?));
                    }
                }
                Err(IpvsError::NoIpvs)
            },
        )
    }

    /// Send a request and wait for its acknowledgement.
    fn request(
        &mut self,
        what: &'static str,
        build: impl FnOnce(u16, u32) -> Vec<u8>,
    ) -> Result<(), IpvsError> {
        let family = self.family;
        self.exchange(
            |seq| build(family, seq),
            |m| match (m.ty, m.error_code()) {
                (nl::NLMSG_ERROR, Ok(0)) => Ok(Some(())),
                (nl::NLMSG_ERROR, Ok(e)) => Err(IpvsError::Kernel { what, errno: -e }),
                (nl::NLMSG_ERROR, Err(e)) => Err(e.into()),
                _ => Ok(None),
            },
        )
    }

    /// Send a request answered by one message (`GET_INFO`, `GET_CONFIG`);
    /// its generic-netlink body.
    fn get(
        &mut self,
        what: &'static str,
        build: impl FnOnce(u16, u32) -> Vec<u8>,
    ) -> Result<Vec<u8>, IpvsError> {
        let family = self.family;
        self.exchange(
            |seq| build(family, seq),
            |m| {
                if m.ty == nl::NLMSG_ERROR {
                    let errno = -m.error_code()?;
                    return Err(IpvsError::Kernel { what, errno });
                }
                Ok(Some(m.genl()?.1.to_vec()))
            },
        )
    }

    /// Send a dump request; the generic-netlink bodies of its replies.
    fn dump(
        &mut self,
        what: &'static str,
        build: impl FnOnce(u16, u32) -> Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, IpvsError> {
        let family = self.family;
        let mut out = Vec::new();
        self.exchange(
            |seq| build(family, seq),
            |m| match m.ty {
                nl::NLMSG_DONE => Ok(Some(())),
                nl::NLMSG_ERROR => match m.error_code()? {
                    0 => Ok(Some(())),
                    e => Err(IpvsError::Kernel { what, errno: -e }),
                },
                _ => {
                    out.push(m.genl()?.1.to_vec());
                    Ok(None)
                }
            },
        )?;
        Ok(out)
    }

    /// The kernel's IPVS version (`(major << 16) | (minor << 8) | patch`)
    /// and connection table size.
    ///
    /// # Errors
    /// The kernel refusing, or a reply that does not decode.
    pub fn info(&mut self) -> Result<(u32, u32), IpvsError> {
        let body = self.get("IPVS info", |f, s| {
            msg::bare(f, s, cmd::GET_INFO, F_REQUEST)
        })?;
        Ok(msg::decode_info(&body)?)
    }

    /// Every virtual service.
    ///
    /// # Errors
    /// The kernel refusing, or a reply that does not decode.
    pub fn services(&mut self) -> Result<Vec<KernelService>, IpvsError> {
        let replies = self.dump("listing services", |f, s| {
            msg::bare(f, s, cmd::GET_SERVICE, F_REQUEST | F_DUMP)
        })?;
        replies
            .iter()
            .map(|b| msg::decode_service(b).map_err(IpvsError::from))
            .collect()
    }

    /// A service's real servers, in the kernel's list order.
    ///
    /// # Errors
    /// The kernel refusing (no such service), or a reply that does not
    /// decode.
    pub fn dests(&mut self, key: &ServiceKey) -> Result<Vec<KernelDest>, IpvsError> {
        let replies = self.dump("listing real servers", |f, s| {
            msg::service_key(f, s, cmd::GET_DEST, key, F_REQUEST | F_DUMP)
        })?;
        replies
            .iter()
            .map(|b| msg::decode_dest(b, key.family()).map_err(IpvsError::from))
            .collect()
    }

    /// The timeouts: tcp, tcpfin, udp (seconds).
    ///
    /// # Errors
    /// The kernel refusing, or a reply that does not decode.
    pub fn timeouts(&mut self) -> Result<(u32, u32, u32), IpvsError> {
        let body = self.get("reading timeouts", |f, s| {
            msg::bare(f, s, cmd::GET_CONFIG, F_REQUEST)
        })?;
        Ok(msg::decode_timeouts(&body)?)
    }

    /// The running sync daemons, master first.
    ///
    /// # Errors
    /// The kernel refusing, or a reply that does not decode.
    pub fn daemons(&mut self) -> Result<Vec<msg::SyncDaemon>, IpvsError> {
        let replies = self.dump("listing sync daemons", |f, s| {
            msg::bare(f, s, cmd::GET_DAEMON, F_REQUEST | F_DUMP)
        })?;
        let mut out = replies
            .iter()
            .map(|b| msg::decode_daemon(b).map_err(IpvsError::from))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|d| d.role != msg::SyncRole::Master);
        Ok(out)
    }

    /// Start a sync daemon.
    ///
    /// # Errors
    /// The kernel refusing (`EEXIST`: one of that role runs; `ENODEV`: no
    /// such interface).
    pub fn start_daemon(&mut self, d: &msg::SyncDaemon) -> Result<(), IpvsError> {
        self.request("starting a sync daemon", |f, q| {
            msg::new_daemon(f, q, d, F_REQUEST | F_ACK)
        })
    }

    /// Stop the sync daemon of `role`.
    ///
    /// # Errors
    /// The kernel refusing (`ESRCH`: none of that role runs).
    pub fn stop_daemon(&mut self, role: msg::SyncRole) -> Result<(), IpvsError> {
        self.request("stopping a sync daemon", |f, q| {
            msg::del_daemon(f, q, role, F_REQUEST | F_ACK)
        })
    }

    /// Zero the counters of one service, or of all (`-Z`).
    ///
    /// # Errors
    /// The kernel refusing (`ESRCH`: no such service).
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), IpvsError> {
        self.request("zeroing counters", |f, q| match key {
            Some(k) => msg::service_key(f, q, cmd::ZERO, k, F_REQUEST | F_ACK),
            None => msg::bare(f, q, cmd::ZERO, F_REQUEST | F_ACK),
        })
    }

    /// Add a virtual service.
    ///
    /// # Errors
    /// The kernel refusing (`EEXIST`, an unknown scheduler: `ENOENT`).
    pub fn add_service(&mut self, s: &ServiceSpec) -> Result<(), IpvsError> {
        self.request("adding a service", |f, q| {
            msg::service(f, q, cmd::NEW_SERVICE, s, F_REQUEST | F_ACK)
        })
    }

    /// Change a virtual service.
    ///
    /// # Errors
    /// The kernel refusing (`ESRCH`: no such service).
    pub fn edit_service(&mut self, s: &ServiceSpec) -> Result<(), IpvsError> {
        self.request("editing a service", |f, q| {
            msg::service(f, q, cmd::SET_SERVICE, s, F_REQUEST | F_ACK)
        })
    }

    /// Delete a virtual service and its real servers.
    ///
    /// # Errors
    /// The kernel refusing (`ESRCH`).
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), IpvsError> {
        self.request("deleting a service", |f, q| {
            msg::service_key(f, q, cmd::DEL_SERVICE, key, F_REQUEST | F_ACK)
        })
    }

    /// Add a real server.
    ///
    /// # Errors
    /// The kernel refusing (`EEXIST`, `ESRCH`, `ERANGE`).
    pub fn add_dest(&mut self, key: &ServiceKey, d: &DestSpec) -> Result<(), IpvsError> {
        self.request("adding a real server", |f, q| {
            msg::dest(f, q, cmd::NEW_DEST, key, d, F_REQUEST | F_ACK)
        })
    }

    /// Change a real server.
    ///
    /// # Errors
    /// The kernel refusing (`ENOENT`: no such real server).
    pub fn edit_dest(&mut self, key: &ServiceKey, d: &DestSpec) -> Result<(), IpvsError> {
        self.request("editing a real server", |f, q| {
            msg::dest(f, q, cmd::SET_DEST, key, d, F_REQUEST | F_ACK)
        })
    }

    /// Delete a real server.
    ///
    /// # Errors
    /// The kernel refusing (`ENOENT`).
    pub fn delete_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        self.request("deleting a real server", |f, q| {
            msg::del_dest(f, q, key, addr, port, F_REQUEST | F_ACK)
        })
    }

    /// Set the timeouts (0 leaves one unchanged).
    ///
    /// # Errors
    /// The kernel refusing.
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), IpvsError> {
        self.request("setting timeouts", |f, q| {
            msg::set_timeouts(f, q, tcp, tcpfin, udp, F_REQUEST | F_ACK)
        })
    }

    /// Remove every service.
    ///
    /// # Errors
    /// The kernel refusing.
    pub fn flush(&mut self) -> Result<(), IpvsError> {
        self.request("flushing the table", |f, q| {
            msg::bare(f, q, cmd::FLUSH, F_REQUEST | F_ACK)
        })
    }
}
