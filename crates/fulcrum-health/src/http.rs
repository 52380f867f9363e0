//! HTTP and HTTPS checks (keepalived's HTTP_GET and SSL_GET, ldirectord's
//! http/https): one `GET` over HTTP/1.0 with `Connection: close`, judged by
//! status code, the body's MD5 digest and a regular expression.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of a reply read: a health page is small.
const MAX_REPLY: usize = 4 << 20;

/// TLS for an HTTPS check.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Without verification of the server's certificate (keepalived's
    /// SSL_GET; the signature of the handshake is still checked).
    pub fn unverified() -> Tls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth();
        Tls {
            config: Arc::new(config),
        }
    }

    /// Verifying the server's certificate against the CA certificates in a
    /// PEM file, and its name against the virtual host (or address).
    ///
    /// # Errors
    /// The file cannot be read or holds no certificate.
    pub fn verified_by(ca_file: &str) -> Result<Tls, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| format!("cannot read the CA file {ca_file}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("CA file {ca_file}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA file {ca_file}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("the CA file {ca_file} holds no certificate"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
        })
    }
}

/// Accepts any certificate but still checks the handshake's signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A request to a real server.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where.
    pub addr: SocketAddr,
    /// The path (with any query).
    pub path: String,
    /// The Host header and TLS server name; the address without it.
    pub virtualhost: Option<String>,
    /// TLS, for HTTPS.
    pub tls: Option<Tls>,
    /// With TLS, name the virtual host in SNI (and verify against it).
    pub sni: bool,
}

/// A real server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The header block as received.
    pub head: Vec<u8>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body's MD5 digest in lowercase hex, as keepalived's genhash
    /// prints it.
    pub fn digest(&self) -> String {
        md5_hex(&self.body)
    }
}

/// MD5 of some bytes in lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Request {
    /// The request's bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let host = match &self.virtualhost {
            Some(h) => h.clone(),
            None => match self.addr {
                SocketAddr::V4(a) => a.to_string(),
                SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            },
        };
        format!(
            "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: fulcrum-health\r\nConnection: close\r\n\r\n",
            self.path
        )
        .into_bytes()
    }

    /// Send the request and read the reply, within `timeout`.
    ///
    /// # Errors
    /// What went wrong, in words for a log line.
    pub async fn fetch(&self, timeout: Duration) -> Result<Reply, String> {
        let secs = timeout.as_secs_f64();
        tokio::time::timeout(timeout, self.fetch_inner())
            .await
            .map_err(|_| format!("no complete reply within {secs:.1}s"))?
    }

    async fn fetch_inner(&self) -> Result<Reply, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match &self.tls {
            None => exchange(tcp, &self.to_bytes()).await,
            Some(tls) => {
                let name = match &self.virtualhost {
                    Some(h) if self.sni => ServerName::try_from(h.clone())
                        .map_err(|e| format!("virtual host `{h}`: {e}"))?,
                    _ => ServerName::IpAddress(self.addr.ip().into()),
                };
                let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                exchange(stream, &self.to_bytes()).await
            }
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> Result<Reply, String> {
    s.write_all(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_REPLY {
                    return Err(format!("reply larger than {} MiB", MAX_REPLY >> 20));
                }
                if let Some(r) = parse_complete(&buf)? {
                    return Ok(r);
                }
            }
            // A TLS server that closes without close_notify: the reply is
            // judged on what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    match parse_complete(&buf)? {
        Some(r) => Ok(r),
        None => parse_at_eof(&buf),
    }
}

struct Head {
    status: u16,
    len: usize,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            let start = String::from_utf8_lossy(&buf[..buf.len().min(40)])
                .escape_debug()
                .to_string();
            return Err(format!("not an HTTP reply ({e}): \"{start}\""));
        }
    };
    let status = resp.code.unwrap_or(0);
    let mut content_length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked");
        }
    }
    Ok(Some(Head {
        status,
        len,
        content_length,
        chunked,
    }))
}

/// The reply, if `buf` holds all of it by its own framing.
fn parse_complete(buf: &[u8]) -> Result<Option<Reply>, String> {
    let Some(h) = parse_head(buf)? else {
        return Ok(None);
    };
    let rest = &buf[h.len..];
    let body = if h.chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        }
    } else if let Some(n) = h.content_length {
        if rest.len() < n {
            return Ok(None);
        }
        rest[..n].to_vec()
    } else {
        return Ok(None); // ends at EOF
    };
    Ok(Some(Reply {
        status: h.status,
        head: buf[..h.len].to_vec(),
        body,
    }))
}

fn parse_at_eof(buf: &[u8]) -> Result<Reply, String> {
    if buf.is_empty() {
        return Err("connection closed without a reply".into());
    }
    let Some(h) = parse_head(buf)? else {
        return Err("connection closed inside the reply's header".into());
    };
    if h.chunked || h.content_length.is_some() {
        return Err("connection closed before the whole body arrived".into());
    }
    Ok(Reply {
        status: h.status,
        head: buf[..h.len].to_vec(),
        body: buf[h.len..].to_vec(),
    })
}

/// A chunked body, once its last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let (skip, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("invalid chunked body".into()),
        };
        let size = usize::try_from(size).map_err(|_| "chunk too large".to_string())?;
        rest = &rest[skip..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// What an HTTP check accepts.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Accepted status ranges.
    pub status: Vec<(u16, u16)>,
    /// The body's MD5, lowercase hex.
    pub digest: Option<String>,
    /// The body must match.
    pub receive: Option<regex::bytes::Regex>,
}

impl Verdict {
    /// Judge a reply.
    ///
    /// # Errors
    /// Why the reply is not good enough.
    pub fn judge(&self, r: &Reply) -> Result<(), String> {
        if !self
            .status
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&r.status))
        {
            let want: Vec<String> = self
                .status
                .iter()
                .map(|(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect();
            return Err(format!("status {} (expected {})", r.status, want.join(",")));
        }
        if let Some(d) = &self.digest {
            let got = r.digest();
            if &got != d {
                return Err(format!("digest {got} (expected {d})"));
            }
        }
        if let Some(re) = &self.receive
            && !re.is_match(&r.body)
        {
            return Err(format!("body does not match /{}/", re.as_str()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_by_length_chunks_and_eof() {
        let r = parse_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
        assert_eq!(
            parse_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel").unwrap(),
            None
        );
        let r = parse_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, b"hello");
        let r = parse_at_eof(b"HTTP/1.0 503 Busy\r\n\r\ngo away").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, b"go away".as_slice()));
        assert!(parse_at_eof(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_at_eof(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert_eq!(
            md5_hex(b"hello genhash\n"),
            "b0de18193e2244faadbb22b1cc770490"
        );
    }

    #[test]
    fn verdicts_say_what_was_wrong() {
        let r = Reply {
            status: 200,
            head: vec![],
            body: b"ok\n".to_vec(),
        };
        let v = Verdict {
            status: vec![(200, 299)],
            digest: Some(md5_hex(b"ok\n")),
            receive: Some(regex::bytes::Regex::new("^ok").unwrap()),
        };
        assert_eq!(v.judge(&r), Ok(()));
        let moved = Reply {
            status: 301,
            ..r.clone()
        };
        assert_eq!(v.judge(&moved), Err("status 301 (expected 200-299)".into()));
        let changed = Reply {
            body: b"changed".to_vec(),
            ..r.clone()
        };
        assert!(v.judge(&changed).unwrap_err().starts_with("digest "));
    }
}
