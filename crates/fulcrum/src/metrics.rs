//! Prometheus metrics: the text exposition format (version 0.0.4) rendered
//! by the controller, which owns every counter, and an HTTP listener that
//! asks it for them on each scrape of `/metrics`.

use std::convert::Infallible;
use std::fmt::Write as _;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use fulcrum_api::control::ControlMsg;

/// Metric families in the text exposition format.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Escape a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Exposition {
    /// Start a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `--metrics`: `ADDR:PORT`, or a port alone for loopback only (metrics
/// name every real server and its load: not for the world by default).
///
/// # Errors
/// A message saying what is expected.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok((std::net::Ipv4Addr::LOCALHOST, port).into());
    }
    s.parse().map_err(|_| {
        format!("`{s}` is neither ADDR:PORT (e.g. 127.0.0.1:9100, [::1]:9100) nor a port")
    })
}

/// A scrape connection's whole life: enough for many scrapes, short enough
/// that idle or half-sent requests cannot pile up.
pub const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Scrape connections served at once; more are closed at once.
pub const MAX_SCRAPERS: usize = 64;
/// The largest request head read.
const MAX_HEAD: usize = 8192;

/// Serve `GET /metrics` on `listener`, asking the controller each time.
pub async fn serve(listener: TcpListener, ctl: mpsc::Sender<ControlMsg>) {
    let scrapers = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPERS));
    let mut backoff = fulcrum_proxy::accept::AcceptBackoff::new("metrics");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        // Over the limit the connection is closed unanswered.
        let Ok(permit) = scrapers.clone().try_acquire_owned() else {
            continue;
        };
        let ctl = ctl.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let ctl = ctl.clone();
                async move {
                    let mut resp = if req.uri().path() == "/metrics" {
                        let (tx, rx) = oneshot::channel();
                        let msg = ControlMsg {
                            request: fulcrum_api::control::Request::Metrics,
                            reply: tx,
                        };
                        match (ctl.send(msg).await, rx.await) {
                            (Ok(()), Ok(r)) => {
                                hyper::Response::new(Full::new(Bytes::from(r.stdout)))
                            }
                            _ => {
                                let mut r = hyper::Response::new(Full::new(Bytes::from(
                                    "the director is stopping\n",
                                )));
                                *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                                r
                            }
                        }
                    } else {
                        let mut r = hyper::Response::new(Full::new(Bytes::from(
                            "not found: metrics are at /metrics\n",
                        )));
                        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                        r
                    };
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let mut e = Exposition::default();
        e.family("fulcrum_x_total", "counter", "Things.");
        e.sample("fulcrum_x_total", &[("name", "a \"b\"\\\n")], 3);
        e.sample("fulcrum_x_total", &[], 4);
        assert_eq!(
            e.finish(),
            "# HELP fulcrum_x_total Things.\n# TYPE fulcrum_x_total counter\nfulcrum_x_total{name=\"a \\\"b\\\"\\\\\\n\"} 3\nfulcrum_x_total 4\n"
        );
    }
}
