//! `fulcrum realserver`: a tiny real server for demos and tests. Every HTTP
//! request gets `200` with body `NAME\n` and, in an `X-Client` header, the
//! address the connection came from (behind NAT or direct routing, the
//! client's own); every UDP datagram gets `NAME\n`.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UdpSocket};

/// Answer HTTP on `listener` with `name` until the task is dropped.
pub async fn serve_http(listener: TcpListener, name: String) {
    let body = Bytes::from(format!("{name}\n"));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let client = hyper::header::HeaderValue::from_str(&peer.to_string()).ok();
        tokio::spawn(async move {
            let svc = service_fn(move |_req| {
                let body = body.clone();
                let client = client.clone();
                async move {
                    let mut resp = hyper::Response::new(Full::new(body));
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain"),
                    );
                    if let Some(c) = client {
                        resp.headers_mut().insert("x-client", c);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Answer every datagram on `sock` with `name`.
pub async fn serve_udp(sock: UdpSocket, name: String) {
    let reply = format!("{name}\n");
    let mut buf = vec![0u8; 65_535];
    loop {
        if let Ok((_, peer)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(reply.as_bytes(), peer).await;
        }
    }
}

/// `fulcrum realserver --listen ADDR:PORT [--name NAME] [--udp]`.
pub async fn run(listen: SocketAddr, name: Option<String>, udp: bool) -> i32 {
    let name = name.unwrap_or_else(|| listen.to_string());
    if udp {
        match UdpSocket::bind(listen).await {
            Ok(s) => {
                eprintln!(
                    "realserver {name}: answering UDP on {}",
                    s.local_addr().map_or(listen, |a| a)
                );
                serve_udp(s, name).await;
                0
            }
            Err(e) => {
                eprintln!("fulcrum realserver: cannot listen on udp {listen}: {e}");
                1
            }
        }
    } else {
        match TcpListener::bind(listen).await {
            Ok(l) => {
                eprintln!(
                    "realserver {name}: answering HTTP on {}",
                    l.local_addr().map_or(listen, |a| a)
                );
                serve_http(l, name).await;
                0
            }
            Err(e) => {
                eprintln!("fulcrum realserver: cannot listen on tcp {listen}: {e}");
                1
            }
        }
    }
}
