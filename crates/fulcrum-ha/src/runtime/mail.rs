//! Failover alerts by mail (`notify_email`, `smtp_server`).

use std::time::Duration;

use tokio::sync::mpsc;

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The relay.
    pub server: std::net::SocketAddr,
    /// `notify_email_from`, or fulcrum@ this host's name.
    pub from: String,
    /// `notify_email`.
    pub to: Vec<String>,
}

pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Send each alert in turn through the relay; failures are logged.
pub(super) async fn mailer(m: MailSettings, mut rx: mpsc::UnboundedReceiver<(String, String)>) {
    use lettre::message::Mailbox;
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(m.server.ip().to_string())
            .port(m.server.port())
            .timeout(Some(Duration::from_secs(10)))
            .hello_name(ClientId::Domain(host_name()))
            .build();
    while let Some((subject, body)) = rx.recv().await {
        let built = (|| {
            let mut b = Message::builder()
                .from(
                    m.from
                        .parse::<Mailbox>()
                        .map_err(|e| format!("from {}: {e}", m.from))?,
                )
                .subject(subject.clone());
            for t in &m.to {
                b = b.to(t.parse::<Mailbox>().map_err(|e| format!("to {t}: {e}"))?);
            }
            b.body(body).map_err(|e| e.to_string())
        })();
        let sent = match built {
            Ok(msg) => transport.send(msg).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(_) => tracing::info!(server = %m.server, to = ?m.to, %subject, "alert mailed"),
            Err(e) => {
                tracing::warn!(server = %m.server, error = %e, %subject, "cannot mail the alert")
            }
        }
    }
}
