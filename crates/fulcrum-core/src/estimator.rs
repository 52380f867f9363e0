//! Traffic counters and IPVS's rate estimator (`ip_vs_est.c`).
//!
//! Every 2 seconds the estimator folds the counters' growth into smoothed
//! rates: `avg += (rate - avg) / 4`, in fixed point. Connections and packets
//! are kept scaled by 2^10, bytes by 2^5, exactly as the kernel keeps them, so
//! `ipvsadm --rate` shows the same figures.

/// The interval at which [`Estimator::tick`] must be called.
pub const ESTIMATOR_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Cumulative counters of a service or dest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

/// Rates as ipvsadm shows them (per second; "bps" is bytes per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// The estimator's state (`struct ip_vs_estimator`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Counters,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

impl Estimator {
    /// Fold the counters' growth since the last tick into the averages. Call
    /// exactly every [`ESTIMATOR_PERIOD`].
    pub fn tick(&mut self, now: &Counters) {
        // Packets and connections: (delta << 9) is delta * 2^10 / 2 s.
        fn fold(avg: &mut i64, cur: u64, last: u64, shift: u32) {
            let rate = (cur.wrapping_sub(last) << shift) as i64;
            *avg += (rate - *avg) >> 2;
        }
        fold(&mut self.cps, now.conns, self.last.conns, 9);
        fold(&mut self.inpps, now.inpkts, self.last.inpkts, 9);
        fold(&mut self.outpps, now.outpkts, self.last.outpkts, 9);
        // Bytes: (delta << 4) is delta * 2^5 / 2 s.
        fold(&mut self.inbps, now.inbytes, self.last.inbytes, 4);
        fold(&mut self.outbps, now.outbytes, self.last.outbytes, 4);
        self.last = *now;
    }

    /// The rates, rounded as `ip_vs_read_estimator` rounds them.
    pub fn rates(&self) -> Rates {
        let pkt = |v: i64| ((v + 0x1FF) >> 10).max(0) as u64;
        let byt = |v: i64| ((v + 0xF) >> 5).max(0) as u64;
        Rates {
            cps: pkt(self.cps),
            inpps: pkt(self.inpps),
            outpps: pkt(self.outpps),
            inbps: byt(self.inbps),
            outbps: byt(self.outbps),
        }
    }
}

/// Counters plus their estimator, as every service and dest carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Cumulative counters.
    pub counters: Counters,
    /// Rate estimator over the counters.
    pub est: Estimator,
}

impl Stats {
    /// Advance the estimator (every 2 s).
    pub fn tick(&mut self) {
        let c = self.counters;
        self.est.tick(&c);
    }

    /// `ipvsadm -Z`: counters and estimator back to zero.
    pub fn zero(&mut self) {
        *self = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_tick_is_a_quarter_of_the_rate() {
        // 100 conns in 2 s = 50 cps; after one tick avg = 12.5 cps, stored as
        // 12800 (×2^10); read-out (12800 + 0x1FF) >> 10 = 12.
        let mut e = Estimator::default();
        e.tick(&Counters {
            conns: 100,
            ..Default::default()
        });
        assert_eq!(e.cps, (100 << 9) >> 2);
        assert_eq!(e.rates().cps, 12);
    }

    #[test]
    fn steady_rate_converges_exactly() {
        let mut e = Estimator::default();
        let mut c = Counters::default();
        for _ in 0..60 {
            c.conns += 2000; // 1000 cps
            c.inpkts += 20_000; // 10000 pps
            c.inbytes += 3_000_000; // 1.5 MB/s
            e.tick(&c);
        }
        let r = e.rates();
        assert_eq!(r.cps, 1000);
        assert_eq!(r.inpps, 10_000);
        assert_eq!(r.inbps, 1_500_000);
        assert_eq!(r.outbps, 0);
    }

    #[test]
    fn decays_after_traffic_stops() {
        let mut e = Estimator::default();
        let mut c = Counters::default();
        for _ in 0..40 {
            c.outpkts += 400;
            e.tick(&c);
        }
        assert_eq!(e.rates().outpps, 200);
        e.tick(&c);
        // avg = 200*1024 - (200*1024)/4 = 153600 → (153600+511)>>10 = 150
        assert_eq!(e.rates().outpps, 150);
        for _ in 0..100 {
            e.tick(&c);
        }
        assert_eq!(e.rates().outpps, 0);
    }
}
