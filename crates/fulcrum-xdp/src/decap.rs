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
    /// Load the program: IP-in-IP and IPv6-in-IPv6, and GUE on UDP port
    /// `gue_port` when given.
    ///
    /// # Errors
    /// No program in this build (what to install), or the kernel refusing.
    pub fn load(gue_port: Option<u16>) -> Result<DecapProgram, XdpError> {
        if OBJECT.is_empty() {
            return Err(XdpError::NotBuilt(env!("FULCRUM_XDP_MISSING")));
        }
        let port = gue_port.unwrap_or(0).to_be();
        let mut ebpf = aya::EbpfLoader::new()
            .override_global("gue_port", &port, true)
            .load(OBJECT)
            .map_err(|e| kernel("loading the decapsulation object")(&e))?;
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

/// The GUE port the decapsulation program with kernel id `id` takes
/// (`None`: IP-in-IP only, or not such a program).
pub fn gue_port(id: u32) -> Option<u16> {
    let prog = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)?;
    prog.map_ids().ok()??.into_iter().find_map(|m| {
        let data = MapData::from_id(m).ok()?;
        let info = data.info().ok()?;
        if !info.name_as_str()?.ends_with(".rodata") {
            return None;
        }
        let arr: aya::maps::Array<MapData, [u8; 2]> =
            aya::maps::Array::try_from(aya::maps::Map::Array(data)).ok()?;
        let port = u16::from_be_bytes(arr.get(&0, 0).ok()?);
        (port != 0).then_some(port)
    })
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
    let data = prog
        .map_ids()
        .map_err(|e| kernel("reading the decapsulation counters")(&e))?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| MapData::from_id(m).ok())
        .find(|d| {
            d.info()
                .is_ok_and(|i| i.name_as_str() == Some("decap_stats"))
        })
        .ok_or_else(|| missing("reading the decapsulation counters", "decap_stats"))?;
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
