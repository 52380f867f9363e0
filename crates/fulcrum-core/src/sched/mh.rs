//! mh — Maglev hashing (`ip_vs_mh.c`).

use std::hash::Hasher;
use std::time::Duration;

use siphasher::sip::SipHasher13;

use super::{DestChange, Flow, Scheduler, SchedulerKind};
use crate::addr::addr_fold;
use crate::dest::Dest;
use crate::service::SchedFlags;

/// The table sizes for `CONFIG_IP_VS_MH_TAB_INDEX` 8..=17.
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// The fixed siphash keys (`generate_hash_secret`), so every director builds
/// the same table.
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);

/// The kernel's `hsiphash` on 64-bit machines is SipHash-1-3 truncated to 32
/// bits (`lib/siphash.c`). The key input is a host-order `unsigned int`,
/// little-endian on the machines Fulcrum runs on.
fn hsiphash(v: u32, key: (u64, u64)) -> u32 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    h.write(&v.to_le_bytes());
    h.finish() as u32
}

/// `ip_vs_mh_hashkey`.
fn hashkey(addr_fold: u32, port: u16, key: (u64, u64), offset: u32) -> u32 {
    hsiphash(
        offset.wrapping_add(u32::from(port)).wrapping_add(addr_fold),
        key,
    )
}

/// Maglev hashing: a lookup table of M slots filled from each dest's
/// permutation, in proportion to `last_weight`. Flags: `mh-fallback` (SCHED1),
/// `mh-port` (SCHED2).
#[derive(Debug)]
pub struct MaglevHash {
    m: u32,
    tab_bits: u32,
    lookup: Vec<Option<u32>>,
}

impl MaglevHash {
    /// A table for `CONFIG_IP_VS_MH_TAB_INDEX = index` (clamped to 8..=17).
    pub fn with_tab_index(index: u8) -> MaglevHash {
        let index = index.clamp(8, 17);
        let m = MH_PRIMES[usize::from(index - 8)];
        MaglevHash {
            m,
            tab_bits: u32::from(index) / 2,
            lookup: vec![None; m as usize],
        }
    }

    /// The table size M.
    pub fn table_size(&self) -> usize {
        self.m as usize
    }

    /// The dest index in each slot (for tests and diagnostics).
    pub fn slots(&self) -> &[Option<u32>] {
        &self.lookup
    }

    /// `ip_vs_mh_reassign`: gcd and shift over `last_weight`, permutations,
    /// then round-robin population.
    fn populate(&mut self, dests: &[Dest]) {
        let gcd = dests
            .iter()
            .map(|d| d.last_weight)
            .filter(|&w| w > 0)
            .fold(0u32, |g, w| if g == 0 { w } else { gcd(w, g) });
        self.lookup.fill(None);
        if gcd < 1 {
            return;
        }
        let max = dests.iter().map(|d| d.last_weight).max().unwrap_or(0);
        let mw = max / gcd;
        let fls = 32 - mw.leading_zeros();
        let rshift = fls.saturating_sub(self.tab_bits);

        struct Setup {
            perm: u32,
            skip: u32,
            turns: u32,
        }
        let m = self.m;
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let fold = addr_fold(&d.addr);
                let offset = hashkey(fold, d.port, HASH1, 0) % m;
                let skip = hashkey(fold, d.port, HASH2, 0) % (m - 1) + 1;
                let lw = d.last_weight;
                let t = (lw / gcd) >> rshift;
                let turns = if t != 0 { t } else { u32::from(lw != 0) };
                Setup {
                    perm: offset,
                    skip,
                    turns,
                }
            })
            .collect();

        let mut taken = vec![0u64; (m as usize).div_ceil(64)];
        let mut n = 0u32;
        'fill: loop {
            for (i, ds) in setup.iter_mut().enumerate() {
                // A dest added with weight 0 takes no slots.
                for _ in 0..ds.turns {
                    let mut c = ds.perm;
                    while taken[(c / 64) as usize] & (1 << (c % 64)) != 0 {
                        ds.perm += ds.skip;
                        if ds.perm >= m {
                            ds.perm -= m;
                        }
                        c = ds.perm;
                    }
                    taken[(c / 64) as usize] |= 1 << (c % 64);
                    self.lookup[c as usize] = Some(i as u32);
                    n += 1;
                    if n == m {
                        break 'fill;
                    }
                }
            }
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Scheduler for MaglevHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn update(&mut self, dests: &[Dest], _: DestChange) {
        self.populate(dests);
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.m as usize)
    }

    fn buckets(&self) -> Option<&[Option<u32>]> {
        Some(&self.lookup)
    }

    fn schedule(
        &mut self,
        dests: &[Dest],
        flow: &Flow,
        flags: SchedFlags,
        _: Duration,
    ) -> Option<usize> {
        let port = if flags.sched2 { flow.sport } else { 0 };
        let fold = addr_fold(&flow.saddr);
        let at = |h: u32| self.lookup[(h % self.m) as usize].map(|i| i as usize);
        let ihash = hashkey(fold, port, HASH1, 0) % self.m;
        let first = at(ihash)?;
        if dests[first].available() {
            return Some(first);
        }
        if !flags.sched1 {
            return None;
        }
        for offset in 0..self.m {
            let roffset = (offset + ihash) % self.m;
            let d = at(hashkey(fold, port, HASH1, roffset))?;
            if dests[d].available() {
                return Some(d);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn siphash13_reference_vector() {
        // SipHash-1-3 with key 00..0f over the empty message is a published
        // vector of the reference implementation.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let h = SipHasher13::new_with_keys(k0, k1);
        assert_eq!(h.finish(), 0xabac_0158_050f_c4dc);
    }

    #[test]
    fn small_table_is_filled_in_weight_proportion() {
        let d = dests(&[1, 1, 2]);
        let mut s = MaglevHash::with_tab_index(8); // M = 251
        s.update(&d, DestChange::Reset);
        let per: Vec<usize> = (0..3)
            .map(|i| s.slots().iter().filter(|x| **x == Some(i)).count())
            .collect();
        // Rounds place 1, 1, 2 entries: 251 = 62 rounds * 4 + 3 → 63, 63, 125.
        assert_eq!(per, vec![63, 63, 125]);
        assert!(s.slots().iter().all(Option::is_some));
    }

    #[test]
    fn fixed_table_for_a_fixed_set() {
        // The first slots of the M = 251 table for three dests; this pins the
        // permutation arithmetic (offset, skip) and the population order.
        let d = dests(&[1, 1, 1]);
        let mut s = MaglevHash::with_tab_index(8);
        s.update(&d, DestChange::Reset);
        let fold = |i: u8| u32::from_be_bytes([10, 0, 0, i]);
        // Each dest's first choice is its own offset (no collisions possible
        // for the first dest).
        let off0 = hashkey(fold(1), 80, HASH1, 0) % 251;
        assert_eq!(s.slots()[off0 as usize], Some(0));
        let per: Vec<usize> = (0..3)
            .map(|i| s.slots().iter().filter(|x| **x == Some(i)).count())
            .collect();
        assert_eq!(per, vec![84, 84, 83]);
    }

    #[test]
    fn quiesced_dest_keeps_its_slots_but_is_not_returned() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = MaglevHash::with_tab_index(8);
        s.update(&d, DestChange::Reset);
        let before = s.slots().to_vec();
        d[1].weight = 0; // last_weight stays 1
        s.update(&d, DestChange::Updated(d[1].id));
        assert_eq!(before, s.slots());
        let f = (0..255u8)
            .map(|x| flow([198, 51, 100, x], 1))
            .find(|f| {
                s.schedule(&d, f, SchedFlags::default(), Duration::ZERO)
                    .is_none()
            })
            .expect("some client hashes to the quiesced dest");
        let fb = SchedFlags {
            sched1: true,
            ..Default::default()
        };
        let alt = s.schedule(&d, &f, fb, Duration::ZERO).unwrap();
        assert_ne!(alt, 1);
    }

    #[test]
    fn capacity_is_the_table_size() {
        assert_eq!(MaglevHash::with_tab_index(12).capacity(), Some(4093));
        assert_eq!(MaglevHash::with_tab_index(16).table_size(), 65521);
    }
}
