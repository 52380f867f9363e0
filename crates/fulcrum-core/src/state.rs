//! IPVS connection states, the TCP transition table and the timeouts
//! (`ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`).

use std::time::Duration;

/// A connection's protocol state, as `/proc/net/ip_vs_conn` and `ipvsadm -Lc`
/// name it. The TCP discriminants are the kernel's indices, which are also the
/// `state` field of sync messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// `IP_VS_TCP_S_NONE`
    None = 0,
    /// `IP_VS_TCP_S_ESTABLISHED`
    Established = 1,
    /// `IP_VS_TCP_S_SYN_SENT`
    SynSent = 2,
    /// `IP_VS_TCP_S_SYN_RECV`
    SynRecv = 3,
    /// `IP_VS_TCP_S_FIN_WAIT`
    FinWait = 4,
    /// `IP_VS_TCP_S_TIME_WAIT`
    TimeWait = 5,
    /// `IP_VS_TCP_S_CLOSE`
    Close = 6,
    /// `IP_VS_TCP_S_CLOSE_WAIT`
    CloseWait = 7,
    /// `IP_VS_TCP_S_LAST_ACK`
    LastAck = 8,
    /// `IP_VS_TCP_S_LISTEN`
    Listen = 9,
    /// `IP_VS_TCP_S_SYNACK`
    SynAck = 10,
    /// UDP's only state (`IP_VS_UDP_S_NORMAL`).
    Udp = 11,
}

const TCP_STATES: [ConnState; 11] = [
    ConnState::None,
    ConnState::Established,
    ConnState::SynSent,
    ConnState::SynRecv,
    ConnState::FinWait,
    ConnState::TimeWait,
    ConnState::Close,
    ConnState::CloseWait,
    ConnState::LastAck,
    ConnState::Listen,
    ConnState::SynAck,
];

impl ConnState {
    /// The name ipvsadm prints.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// The TCP state with a kernel index, if it is one.
    pub fn from_tcp_index(i: u8) -> Option<ConnState> {
        TCP_STATES.get(usize::from(i)).copied()
    }
}

/// Which way a packet travels, choosing the part of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → real server.
    Input,
    /// Real server → client (NAT only).
    Output,
    /// Client → real server when replies bypass the director (DR, TUN).
    InputOnly,
}

/// The TCP flags that drive transitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN
    pub syn: bool,
    /// FIN
    pub fin: bool,
    /// ACK
    pub ack: bool,
    /// RST
    pub rst: bool,
}

impl TcpFlags {
    /// A bare SYN.
    pub const SYN: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        ack: false,
        rst: false,
    };
    /// SYN+ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        ack: true,
        rst: false,
    };
    /// A bare ACK.
    pub const ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: true,
        rst: false,
    };
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: true,
        ack: true,
        rst: false,
    };
    /// RST.
    pub const RST: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: false,
        rst: true,
    };

    /// `tcp_state_idx`: rst > syn > fin > ack; `None` for a segment without any.
    fn index(self) -> Option<usize> {
        if self.rst {
            Some(3)
        } else if self.syn {
            Some(0)
        } else if self.fin {
            Some(1)
        } else if self.ack {
            Some(2)
        } else {
            None
        }
    }
}

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `tcp_states[]`: rows are `direction offset + flag index`
/// (syn, fin, ack, rst), columns are the current state (sNO .. sSA).
#[rustfmt::skip]
const TCP_TABLE: [[ConnState; 11]; 12] = [
    // INPUT           sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    // OUTPUT
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    // INPUT_ONLY
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The next TCP state for a segment (`set_tcp_state`). A segment with none of
/// SYN/FIN/ACK/RST leaves the state unchanged, as does a UDP state.
pub fn tcp_transition(cur: ConnState, dir: Direction, flags: TcpFlags) -> ConnState {
    let Some(flag) = flags.index() else {
        return cur;
    };
    if cur == ConnState::Udp {
        return cur;
    }
    let off = match dir {
        Direction::Input => 0,
        Direction::Output => 4,
        Direction::InputOnly => 8,
    };
    TCP_TABLE[off + flag][cur as usize]
}

/// Connection timeouts per state (`tcp_timeouts[]`, `udp_timeouts[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    tcp: [Duration; 11],
    udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            tcp: [
                s(2),       // NONE
                s(15 * 60), // ESTABLISHED
                s(2 * 60),  // SYN_SENT
                s(60),      // SYN_RECV
                s(2 * 60),  // FIN_WAIT
                s(2 * 60),  // TIME_WAIT
                s(10),      // CLOSE
                s(60),      // CLOSE_WAIT
                s(30),      // LAST_ACK
                s(2 * 60),  // LISTEN
                s(120),     // SYNACK
            ],
            udp: s(5 * 60),
        }
    }
}

impl Timeouts {
    /// The timeout of a state.
    pub fn of(&self, state: ConnState) -> Duration {
        match state {
            ConnState::Udp => self.udp,
            s => self.tcp[s as usize],
        }
    }

    /// The three values `ipvsadm --timeout` shows: tcp (ESTABLISHED), tcpfin
    /// (FIN_WAIT) and udp.
    pub fn triple(&self) -> (Duration, Duration, Duration) {
        (
            self.tcp[ConnState::Established as usize],
            self.tcp[ConnState::FinWait as usize],
            self.udp,
        )
    }

    /// `ipvsadm --set tcp tcpfin udp`: a zero leaves that value unchanged.
    pub fn set(&mut self, tcp: Duration, tcpfin: Duration, udp: Duration) {
        if !tcp.is_zero() {
            self.tcp[ConnState::Established as usize] = tcp;
        }
        if !tcpfin.is_zero() {
            self.tcp[ConnState::FinWait as usize] = tcpfin;
        }
        if !udp.is_zero() {
            self.udp = udp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: ConnState = ConnState::SynAck;

    fn run(dir_flags: &[(Direction, TcpFlags)]) -> Vec<ConnState> {
        let mut s = ConnState::None;
        dir_flags
            .iter()
            .map(|(d, f)| {
                s = tcp_transition(s, *d, *f);
                s
            })
            .collect()
    }

    #[test]
    fn nat_handshake_and_close() {
        use Direction::*;
        let states = run(&[
            (Input, TcpFlags::SYN),
            (Output, TcpFlags::SYN_ACK),
            (Input, TcpFlags::ACK),
            (Input, TcpFlags::FIN_ACK),
            (Output, TcpFlags::ACK),
            (Output, TcpFlags::FIN_ACK),
            (Input, TcpFlags::ACK),
        ]);
        assert_eq!(
            states,
            vec![SR, SR, ES, CW, CW, TW, TW],
            "client SYN, server SYN/ACK, ACK, client FIN, server ACK, server FIN, last ACK"
        );
    }

    #[test]
    fn direct_routing_uses_input_only() {
        use Direction::*;
        let states = run(&[
            (InputOnly, TcpFlags::SYN),
            (InputOnly, TcpFlags::ACK),
            (InputOnly, TcpFlags::FIN_ACK),
            (InputOnly, TcpFlags::ACK),
        ]);
        assert_eq!(states, vec![SR, ES, FW, FW]);
        // RST from SYNACK differs between INPUT and INPUT_ONLY.
        assert_eq!(tcp_transition(SA, Input, TcpFlags::RST), SR);
        assert_eq!(tcp_transition(SA, InputOnly, TcpFlags::RST), CL);
    }

    #[test]
    fn flag_priority_rst_first() {
        let all = TcpFlags {
            syn: true,
            fin: true,
            ack: true,
            rst: true,
        };
        assert_eq!(tcp_transition(ES, Direction::Input, all), CL);
        let syn_fin = TcpFlags {
            syn: true,
            fin: true,
            ..Default::default()
        };
        assert_eq!(tcp_transition(ES, Direction::Input, syn_fin), ES);
        assert_eq!(
            tcp_transition(ES, Direction::Input, TcpFlags::default()),
            ES
        );
    }

    #[test]
    fn every_cell_of_the_output_row_for_ack() {
        let want = [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES];
        for (i, w) in want.iter().enumerate() {
            let cur = ConnState::from_tcp_index(i as u8).unwrap();
            assert_eq!(
                tcp_transition(cur, Direction::Output, TcpFlags::ACK),
                *w,
                "{cur:?}"
            );
        }
    }

    #[test]
    fn timeouts_default_and_set() {
        let mut t = Timeouts::default();
        assert_eq!(
            t.triple(),
            (
                Duration::from_secs(900),
                Duration::from_secs(120),
                Duration::from_secs(300)
            )
        );
        t.set(
            Duration::from_secs(3600),
            Duration::ZERO,
            Duration::from_secs(10),
        );
        assert_eq!(
            t.triple(),
            (
                Duration::from_secs(3600),
                Duration::from_secs(120),
                Duration::from_secs(10)
            )
        );
        assert_eq!(t.of(ConnState::Close), Duration::from_secs(10));
        assert_eq!(t.of(ConnState::Udp), Duration::from_secs(10));
    }
}
