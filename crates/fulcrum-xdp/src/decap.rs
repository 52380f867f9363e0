//! The decapsulation program for tunnelled real servers (`bpf/decap.bpf.c`):
//! where the kernel has no ipip module, it strips the outer IP header of
//! IP-in-IP and IPv6-in-IPv6 packets in XDP, so the client's packet reaches
//! the kernel as if it had come straight.
//!
//! It must outlive the command that installs it (`fulcrum realserver-setup`),
//! so it is attached over netlink (`ip link set DEV xdp fd N`), which ties
//! it to the device rather than to a process: [`DecapProgram::load`] loads
//! it here, the caller attaches its descriptor with rtnetlink, and
//! [`is_decap`] recognises it on a device later (for `--check` and
//! `--undo`).

use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray};
use aya::programs::Xdp;

use crate::{XdpError, kernel, missing};

/// The compiled decapsulation object (empty without clang at build time).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/decap.bpf.o"));

/// The program's name in the kernel.
pub const NAME: &str = "fulcrum_decap";

/// The decapsulation program, loaded into the kernel (not attached).
#[derive(Debug)]
pub struct DecapProgram {
    ebpf: Ebpf,
}

impl DecapProgram {
    /// Load the program.
    ///
    /// # Errors
    /// No program in this build (what to install), or the kernel refusing.
    pub fn load() -> Result<DecapProgram, XdpError> {
        if OBJECT.is_empty() {
            return Err(XdpError::NotBuilt(env!("FULCRUM_XDP_MISSING")));
        }
        let mut ebpf =
            Ebpf::load(OBJECT).map_err(|e| kernel("loading the decapsulation object")(&e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(NAME)
            .ok_or_else(|| missing("loading the decapsulation program", NAME))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| {
                kernel("loading the decapsulation program")(&e)
            })?;
        prog.load()
            .map_err(|e| kernel("loading the decapsulation program")(&e))?;
        Ok(DecapProgram { ebpf })
    }

    /// The program's descriptor, to attach over netlink (valid while this
    /// value lives; the attachment keeps the program after that).
    ///
    /// # Errors
    /// The program is missing from the object.
    pub fn fd(&self) -> Result<RawFd, XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program(NAME)
            .ok_or_else(|| missing("attaching the decapsulation program", NAME))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| {
                kernel("attaching the decapsulation program")(&e)
            })?;
        let fd = prog
            .fd()
            .map_err(|e| kernel("attaching the decapsulation program")(&e))?;
        Ok(fd.as_fd().as_raw_fd())
    }
}

impl DecapProgram {
    /// Run the program on one frame in the kernel (`BPF_PROG_TEST_RUN`):
    /// its verdict and the frame as it left.
    ///
    /// # Errors
    /// The kernel refusing the run.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        use aya::programs::{TestRun, TestRunOptions};
        let prog: &Xdp = self
            .ebpf
            .program(NAME)
            .ok_or_else(|| missing("running the decapsulation program", NAME))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| {
                kernel("running the decapsulation program")(&e)
            })?;
        let mut out = vec![0u8; frame.len() + 64];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        let r = prog
            .test_run(opts)
            .map_err(|e| kernel("running the decapsulation program")(&e))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }
}

/// Whether the program with kernel id `id` is Fulcrum's decapsulation
/// program.
pub fn is_decap(id: u32) -> bool {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .any(|p| p.id() == id && p.name_as_str() == Some(NAME))
}

/// What the program with kernel id `id` counted, summed over the CPUs:
/// packets decapsulated, and passed untouched.
///
/// # Errors
/// No such program, or the kernel refusing the read.
pub fn counters(id: u32) -> Result<(u64, u64), XdpError> {
    let prog = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .ok_or_else(|| missing("reading the decapsulation counters", NAME))?;
    let map_id = prog
        .map_ids()
        .map_err(|e| kernel("reading the decapsulation counters")(&e))?
        .and_then(|ids| ids.first().copied())
        .ok_or_else(|| missing("reading the decapsulation counters", "decap_stats"))?;
    let data = MapData::from_id(map_id).map_err(|e| kernel("reading the counters")(&e))?;
    let arr: PerCpuArray<MapData, u64> = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))
        .map_err(|e| kernel("reading the counters")(&e))?;
    let get = |i: u32| -> Result<u64, XdpError> {
        Ok(arr
            .get(&i, 0)
            .map_err(|e| kernel("reading the counters")(&e))?
            .iter()
            .sum())
    };
    Ok((get(0)?, get(1)?))
}
