//! The director's recent log, kept in memory for the console: the last
//! [`LINES`] events at the log's level, each cut to [`LINE_MAX`] bytes.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept.
pub const LINES: usize = 200;
/// The longest line kept, in bytes.
pub const LINE_MAX: usize = 600;

/// The recent log.
#[derive(Debug, Default, Clone)]
pub struct LogRing {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogRing {
    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, line: String) {
        if let Ok(mut l) = self.lines.lock() {
            if l.len() == LINES {
                l.pop_front();
            }
            l.push_back(line);
        }
    }
}

static RING: OnceLock<LogRing> = OnceLock::new();

/// The process's recent log (empty until logging starts).
pub fn recent() -> LogRing {
    RING.get_or_init(LogRing::default).clone()
}

/// A tracing layer that keeps each event in the ring.
pub fn layer() -> RingLayer {
    RingLayer { ring: recent() }
}

/// See [`layer`].
#[derive(Debug)]
pub struct RingLayer {
    ring: LogRing,
}

struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut l = Line {
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut l);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let (h, m, s) = ((now / 3600) % 24, (now / 60) % 60, now % 60);
        let mut line = format!(
            "{h:02}:{m:02}:{s:02} {:>5} {}{}",
            event.metadata().level(),
            l.message,
            l.fields
        );
        if line.len() > LINE_MAX {
            let mut cut = LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        self.ring.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn events_are_kept_bounded_and_cut() {
        let ring = LogRing::default();
        let sub = tracing_subscriber::registry().with(RingLayer { ring: ring.clone() });
        tracing::subscriber::with_default(sub, || {
            for i in 0..LINES + 5 {
                tracing::info!(n = i, who = "rs1", "real server down");
            }
            tracing::warn!("{}", "x".repeat(5000));
        });
        let lines = ring.lines();
        assert_eq!(lines.len(), LINES);
        assert!(
            lines[0].ends_with(" INFO real server down n=6 who=rs1"),
            "{}",
            lines[0]
        );
        let last = lines.last().unwrap();
        assert!(last.contains(" WARN xxx") && last.ends_with('…') && last.len() <= LINE_MAX + 3);
    }
}
