//! Moving bytes between two sockets with `splice(2)` through a pipe: the
//! data never enters userspace.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How much one splice call moves at most (the default pipe size).
const CHUNK: usize = 64 * 1024;

/// Why a direction stopped.
#[derive(Debug)]
pub(crate) enum End {
    /// The sender closed its side (FIN); the receiver was half-closed.
    Fin,
    /// An error, typically a reset.
    Error(io::Error),
}

/// Copy `from` → `to` until EOF or error, counting bytes in `moved`. On EOF
/// the write side of `to` is shut down, passing the FIN on.
pub(crate) async fn one_way(from: &TcpStream, to: &TcpStream, moved: Arc<AtomicU64>) -> End {
    let (r, w): (OwnedFd, OwnedFd) = match pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK) {
        Ok(p) => p,
        Err(e) => return End::Error(e.into()),
    };
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    loop {
        let n = loop {
            if let Err(e) = from.readable().await {
                return End::Error(e);
            }
            match from.try_io(Interest::READABLE, || {
                splice(from, None, &w, None, CHUNK, flags).map_err(io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return End::Error(e),
            }
        };
        if n == 0 {
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return End::Fin;
        }
        let mut left = n;
        while left > 0 {
            if let Err(e) = to.writable().await {
                return End::Error(e);
            }
            match to.try_io(Interest::WRITABLE, || {
                splice(&r, None, to, None, left, flags).map_err(io::Error::from)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return End::Error(e),
            }
        }
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}
