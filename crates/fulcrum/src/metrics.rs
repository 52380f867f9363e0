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

use crate::controller::ControlMsg;

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

/// Serve `GET /metrics` on `listener`, asking the controller each time.
pub async fn serve(listener: TcpListener, ctl: mpsc::Sender<ControlMsg>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctl = ctl.clone();
        tokio::spawn(async move {
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
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
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
