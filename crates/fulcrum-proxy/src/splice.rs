//! Moving bytes between two sockets. Small exchanges (requests, replies)
//! are copied through one buffer shared by the thread, so an idle
//! connection holds no buffer at all; as soon as a read fills that buffer
//! the direction is bulk and switches to `splice(2)` through a pipe, so the
//! data never enters userspace. (HAProxy's `splice-auto` makes the same
//! choice.)

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The shared copy buffer; a read that fills it marks the direction bulk.
const COPY_BUF: usize = 64 * 1024;
/// How much one splice call moves at most (the default pipe size).
const CHUNK: usize = 64 * 1024;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; COPY_BUF].into_boxed_slice());
}

/// Why a direction stopped.
#[derive(Debug)]
pub(crate) enum End {
    /// The sender closed its side (FIN); the receiver was half-closed.
    Fin,
    /// An error, typically a reset.
    Error(io::Error),
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Write all of `data` to `to`, waiting for room as needed.
async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if is_would_block(&e) => to.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Where a direction counts what it moved. `moved` is called after every
/// transfer with the byte count; it decides itself when to report.
pub(crate) trait Meter {
    /// `n` more bytes went through.
    fn moved(&self, n: u64);

    /// This direction reached its sender's FIN. True when the other
    /// direction had ended already: the connection closes at once, and the
    /// close sends the FIN, so no half-close is needed.
    fn ended(&self) -> bool {
        false
    }
}

/// Pass a FIN on: half-close `to`, unless the whole connection is closing.
fn pass_fin(to: &TcpStream, meter: &impl Meter) -> End {
    if !meter.ended() {
        let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
    }
    End::Fin
}

/// Read what `from` holds into `buf`. A read that does not fill the buffer
/// took everything queued, so the socket's readiness is cleared there and
/// then (the next data or FIN wakes it again: its edge comes after this
/// read), which spares the read that would only say "nothing more" — one
/// system call in three for request/response traffic. A FIN seen with the
/// data is not lost: tokio keeps the read-closed readiness.
fn drain_read(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut took = None;
    let res = from.try_io(Interest::READABLE, || {
        let n = rustix::io::read(from, &mut *buf).map_err(io::Error::from)?;
        if n > 0 && n < buf.len() {
            took = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (res, took) {
        (_, Some(n)) => Ok(n),
        (res, None) => res,
    }
}

/// Copy `from` → `to` until EOF or error, counting bytes with `meter`. On
/// EOF the write side of `to` is shut down, passing the FIN on.
pub(crate) async fn one_way(from: &TcpStream, to: &TcpStream, meter: &impl Meter) -> End {
    loop {
        if let Err(e) = from.readable().await {
            return End::Error(e);
        }
        // Read and try to write in one go, without awaiting, so the shared
        // buffer is never held across a suspension point.
        let step = BUF.with_borrow_mut(|buf| match drain_read(from, buf) {
            Ok(0) => Ok(None),
            Ok(n) => match to.try_write(&buf[..n]) {
                Ok(w) if w == n => Ok(Some((n, Vec::new()))),
                Ok(w) => Ok(Some((n, buf[w..n].to_vec()))),
                Err(e) if is_would_block(&e) => Ok(Some((n, buf[..n].to_vec()))),
                Err(e) => Err(e),
            },
            Err(e) if is_would_block(&e) => Ok(Some((0, Vec::new()))),
            Err(e) => Err(e),
        });
        let (n, rest) = match step {
            Ok(None) => return pass_fin(to, meter),
            Ok(Some(x)) => x,
            Err(e) => return End::Error(e),
        };
        if !rest.is_empty()
            && let Err(e) = Box::pin(write_all(to, &rest)).await
        {
            return End::Error(e);
        }
        meter.moved(n as u64);
        if n == COPY_BUF {
            // Boxed: the bulk path's state would otherwise sit in every idle
            // connection's task.
            return Box::pin(splice_rest(from, to, meter)).await;
        }
    }
}

/// The bulk path: splice through a pipe until EOF or error.
async fn splice_rest(from: &TcpStream, to: &TcpStream, meter: &impl Meter) -> End {
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
                Err(e) if is_would_block(&e) => continue,
                Err(e) => return End::Error(e),
            }
        };
        if n == 0 {
            return pass_fin(to, meter);
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
                Err(e) if is_would_block(&e) => continue,
                Err(e) => return End::Error(e),
            }
        }
        meter.moved(n as u64);
    }
}
