//! Fulcrum's one door to the kernel's network configuration: floating
//! addresses ([`addr`], over rtnetlink), announcements ([`announce`]:
//! gratuitous ARP and unsolicited neighbour advertisements), the raw sockets
//! of failover ([`raw`]), the socket options no safe crate wraps — and the
//! director's private state files ([`files`]: written whole or not at all,
//! read only when they are its own).
//!
//! Everything unsafe in Fulcrum lives here, in small functions with their
//! contracts written down.

pub mod addr;
pub mod announce;
pub mod files;
pub mod raw;
pub mod transparent;

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Return the heap's free memory to the kernel (glibc's `malloc_trim(0)`),
/// so that once a burst of connections has expired the director's resident
/// memory falls back instead of staying at the burst's high-water mark. Does
/// nothing with other C libraries.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    #[allow(
        unsafe_code,
        reason = "malloc_trim has no safe wrapper in rustix or libc"
    )]
    // SAFETY: malloc_trim takes a plain size and works only on the
    // allocator's own free lists, under its own locks; no memory of ours is
    // touched and any return value is fine.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Segment counts of a TCP socket, from `TCP_INFO` (`tcpi_segs_in`,
/// `tcpi_segs_out`, Linux >= 4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpSegments {
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
}

/// Read a TCP socket's segment counters.
///
/// # Errors
/// The `getsockopt` error, e.g. `ENOTSOCK` or `ENOPROTOOPT` for a non-TCP
/// socket.
pub fn tcp_segments(sock: impl AsFd) -> io::Result<TcpSegments> {
    let fd = sock.as_fd();
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    #[allow(
        unsafe_code,
        reason = "getsockopt(TCP_INFO) has no safe wrapper in rustix or socket2"
    )]
    // SAFETY: `fd` is a valid open descriptor borrowed for the call; `info`
    // is a writable, zero-initialised buffer of `len` bytes, and the kernel
    // writes at most `len` bytes into it and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        unsafe_code,
        reason = "the buffer was zero-initialised, so every field is defined"
    )]
    // SAFETY: zeroed() initialised every byte; the kernel may have filled a
    // prefix of it. All-zero is a valid `tcp_info`.
    let info = unsafe { info.assume_init() };
    Ok(TcpSegments {
        segs_in: info.tcpi_segs_in,
        segs_out: info.tcpi_segs_out,
    })
}

/// Take ownership of socket `fd`, which the director that started this
/// one left open for it (`fulcrum restart` passes its listening sockets by
/// number). See [`inherited_fd`]; it must also be a socket.
///
/// # Errors
/// As [`inherited_fd`], and `ENOTSOCK` when it is not a socket.
pub fn inherited_socket(fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    let owned = inherited_fd(fd)?;
    rustix::net::sockopt::socket_type(&owned)?;
    Ok(owned)
}

/// Take ownership of descriptor `fd`, left open by the process that
/// started this one. The number must be above the standard streams and
/// open; it gets close-on-exec again. Call once per number.
///
/// # Errors
/// `EBADF` when it is not open, `EINVAL` for 0–2.
pub fn inherited_fd(fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    if fd < 3 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    #[allow(
        unsafe_code,
        reason = "a descriptor number from the environment has no safe constructor"
    )]
    // SAFETY: the borrow lasts for one fcntl call, which fails with EBADF
    // rather than misbehaving when the number is not open.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed)?;
    #[allow(
        unsafe_code,
        reason = "taking ownership of an inherited descriptor has no safe constructor"
    )]
    // SAFETY: the number is open (checked above) and was left to this
    // process by its parent for it alone; the caller takes each number
    // once, so nothing else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn counts_segments_of_a_loopback_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        let seg = tcp_segments(&c).unwrap();
        // SYN, ACK, data sent; SYN/ACK (and an ACK) received.
        assert!(seg.segs_out >= 3, "{seg:?}");
        assert!(seg.segs_in >= 1, "{seg:?}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(tcp_segments(&udp).is_err());
    }
}
