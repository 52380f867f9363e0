//! What every worker shares with the controller: the published snapshot it
//! schedules from, and its outbox of events for the controller.
//!
//! A worker schedules a new connection itself when the service allows it
//! (no persistence, no one-packet scheduling; see
//! [`fulcrum_core::snapshot`]) and tells the controller afterwards. Every
//! event a worker has for the controller goes through its outbox: events
//! queue there while the worker's ready tasks run and leave as one batch
//! when they are done, so the controller is woken once per batch rather
//! than once per connection, and a connection's events stay in order.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use fulcrum_core::snapshot::Snapshot;
use fulcrum_core::table::Scheduled;
use fulcrum_core::{Protocol, ServiceKey};
use tokio::sync::{Notify, mpsc};

use crate::events::{Answer, DestOptions, PlaneEvent};

/// The most events an outbox holds while the controller does not take
/// them; past it, traffic reports are dropped (and counted), so a stalled
/// controller costs bounded memory. Lifecycle events are always kept.
pub(crate) const OUTBOX_MAX: usize = 262_144;

/// What the plane publishes for its workers.
#[derive(Debug)]
pub(crate) struct Published {
    /// The table as the controller last published it.
    pub(crate) table: Snapshot,
    /// Per real server, what the plane does beyond IPVS.
    pub(crate) options: HashMap<(ServiceKey, IpAddr, u16), DestOptions>,
    /// The controller's clock: `now` for schedulers is the time since it.
    pub(crate) epoch: Instant,
}

impl Published {
    /// Nothing published yet; the clock starts now.
    pub(crate) fn empty() -> Published {
        Published {
            table: Snapshot::default(),
            options: HashMap::new(),
            epoch: Instant::now(),
        }
    }
}

/// One worker's link to the controller.
#[derive(Debug)]
pub(crate) struct Worker {
    events: mpsc::Sender<PlaneEvent>,
    published: Arc<ArcSwap<Published>>,
    buf: Mutex<Vec<PlaneEvent>>,
    wake: Notify,
    dropped: AtomicU64,
}

impl Worker {
    pub(crate) fn new(
        events: mpsc::Sender<PlaneEvent>,
        published: Arc<ArcSwap<Published>>,
    ) -> Worker {
        Worker {
            events,
            published,
            buf: Mutex::new(Vec::new()),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// The controller's channel, for requests that need an answer.
    pub(crate) fn events(&self) -> &mpsc::Sender<PlaneEvent> {
        &self.events
    }

    /// Queue an event for the controller; it leaves with the worker's next
    /// batch. Never waits.
    pub(crate) fn emit(&self, ev: PlaneEvent) {
        let mut buf = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buf.len() >= OUTBOX_MAX && matches!(ev, PlaneEvent::Traffic { .. }) {
            if self.dropped.fetch_add(1, Relaxed) == 0 {
                tracing::warn!(
                    held = buf.len(),
                    "the controller is not taking the data plane's events; traffic reports are dropped until it does (listings will undercount bytes and packets)"
                );
            }
            return;
        }
        if buf.is_empty() {
            self.wake.notify_one();
        }
        buf.push(ev);
    }

    /// Send the outbox to the controller, batch by batch, until the
    /// controller is gone. Runs on the worker's own runtime.
    pub(crate) async fn flush(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.events.closed() => return,
            }
            // Let the worker's other ready tasks add to this batch first.
            tokio::task::yield_now().await;
            let batch = std::mem::take(
                &mut *self
                    .buf
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if batch.is_empty() {
                continue;
            }
            if self.dropped.swap(0, Relaxed) > 0 {
                tracing::info!("the controller takes the data plane's events again");
            }
            if self.events.send(PlaneEvent::Batch(batch)).await.is_err() {
                return;
            }
        }
    }

    /// Pick a real server for a new connection from `client` that reached
    /// `local` on service `key`: from the published snapshot when the
    /// service allows it, else by asking the controller.
    pub(crate) async fn schedule(
        &self,
        key: ServiceKey,
        proto: Protocol,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Answer {
        let flow = fulcrum_core::sched::Flow {
            saddr: client.ip(),
            sport: client.port(),
            daddr: local.ip(),
            dport: local.port(),
        };
        let published = self.published.load();
        if let Some(svc) = published.table.service(&key).filter(|s| s.local()) {
            let now = published.epoch.elapsed();
            let Some(p) = svc.schedule(&flow, now) else {
                return Answer::NoDest;
            };
            self.emit(PlaneEvent::Opened {
                key,
                proto,
                flow,
                dest: p.dest,
                conn: p.conn,
            });
            let opts = published
                .options
                .get(&(key, p.daddr, p.dport))
                .copied()
                .unwrap_or_default();
            return Answer::Dest(
                Scheduled {
                    conn: Some(p.conn),
                    dest: p.dest,
                    daddr: p.daddr,
                    dport: p.dport,
                },
                opts,
            );
        }
        drop(published);
        crate::events::ask(&self.events, key, proto, flow).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_core::conn::ConnId;
    use fulcrum_core::state::Direction;

    fn traffic(i: u64) -> PlaneEvent {
        PlaneEvent::Traffic {
            conn: ConnId(i),
            inpkts: 1,
            inbytes: 1,
            outpkts: 1,
            outbytes: 1,
        }
    }

    /// A controller that takes nothing: the outbox stops growing at its
    /// bound for traffic reports, counting what it drops, and still keeps
    /// every lifecycle event (a connection's states and its end must reach
    /// the table, or its counts would be wrong for ever).
    #[test]
    fn a_stalled_controller_costs_bounded_memory_and_loses_no_lifecycle_event() {
        let (tx, _stalled) = mpsc::channel(1);
        let w = Worker::new(tx, Arc::new(ArcSwap::from_pointee(Published::empty())));
        for i in 0..OUTBOX_MAX as u64 + 1000 {
            w.emit(traffic(i));
        }
        let held = |w: &Worker| w.buf.lock().unwrap().len();
        assert_eq!(held(&w), OUTBOX_MAX);
        assert_eq!(w.dropped.load(Relaxed), 1000);
        for i in 0..10 {
            w.emit(PlaneEvent::Segment {
                conn: ConnId(i),
                dir: Direction::Input,
                flags: None,
            });
        }
        assert_eq!(held(&w), OUTBOX_MAX + 10, "lifecycle events are kept");
        let buf = w.buf.lock().unwrap();
        assert!(matches!(
            buf.last(),
            Some(PlaneEvent::Segment {
                conn: ConnId(9),
                ..
            })
        ));
    }
}
