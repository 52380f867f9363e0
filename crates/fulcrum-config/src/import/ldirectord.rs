//! ldirectord.cf → lvs.cf.

use super::{Imported, Note, Out, ServerOut, VirtualOut, value};

/// `key=value` (or `key = value`), the value unquoted.
fn key_value(line: &str) -> Option<(String, String)> {
    let (k, v) = line.split_once('=')?;
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    Some((k.trim().to_ascii_lowercase(), v.to_string()))
}

fn forwarding(how: &str) -> Option<&'static str> {
    match how {
        "gate" => Some("direct"),
        "masq" => Some("nat"),
        "ipip" => Some("tunnel"),
        _ => None,
    }
}

/// `IP:PORT` or `[IPv6]:PORT`, a host name kept as written.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        return Some((h.to_string(), p.to_string()));
    }
    let (h, p) = s.rsplit_once(':')?;
    Some((h.to_string(), p.to_string()))
}

/// `192.168.6.2->192.168.6.8`: every IPv4 address of the range.
fn expand(host: &str) -> Option<Vec<String>> {
    let (a, b) = host.split_once("->")?;
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let b: std::net::Ipv4Addr = b.parse().ok()?;
    let (a, b) = (u32::from(a), u32::from(b));
    if b < a || b - a > 1024 {
        return None;
    }
    Some(
        (a..=b)
            .map(|x| std::net::Ipv4Addr::from(x).to_string())
            .collect(),
    )
}

/// The check a `service` calls for with `checktype = negotiate`.
fn negotiate_check(service: &str) -> Option<&'static str> {
    match service {
        "http" => Some("http_get"),
        "https" => Some("https_get"),
        "ftp" => Some("ftp"),
        "smtp" => Some("smtp"),
        "pop" => Some("pop"),
        "imap" => Some("imap"),
        "nntp" => Some("nntp"),
        "dns" => Some("dns"),
        _ => None,
    }
}

struct Virtual {
    out: VirtualOut,
    line: usize,
    service: Option<String>,
    checktype: Option<String>,
    /// `request`/`receive` given on `real` lines (ldirectord allows them
    /// per real server).
    quiescent: Option<bool>,
}

/// Import an ldirectord.cf.
pub fn ldirectord(src: &str) -> Imported {
    let mut notes: Vec<Note> = Vec::new();
    let mut note = |line: usize, m: String| notes.push(Note { line, message: m });
    let mut out = Out::default();
    let mut defaults: Vec<(String, String)> = Vec::new();
    let mut global_quiescent = true;
    let mut global_fallback: Option<String> = None;
    let mut virtuals: Vec<Virtual> = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let n = i + 1;
        let text = raw.split('#').next().unwrap_or_default();
        if text.trim().is_empty() {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        let Some((k, v)) = key_value(text) else {
            note(n, format!("`{}` is not `key=value`; left out", text.trim()));
            continue;
        };
        if k == "virtual" {
            let mut out_v = VirtualOut {
                name: format!("vs{}", virtuals.len() + 1),
                origin: format!("virtual={v} (line {n})"),
                ..Default::default()
            };
            out_v.keys.push(("active".into(), "1".into()));
            match split_host_port(&v) {
                Some((h, p)) => {
                    out_v.keys.push(("address".into(), value(&h)));
                    out_v.keys.push(("port".into(), value(&p)));
                }
                None if v.chars().all(|c| c.is_ascii_digit()) => {
                    out_v.keys.push(("fwmark".into(), v.clone()));
                    note(
                        n,
                        "an fwmark service: lvs.cf needs its virtual address too; set `address` in the virtual server".into(),
                    );
                }
                None => {
                    note(
                        n,
                        format!(
                            "`virtual={v}` is neither ADDRESS:PORT nor a firewall mark; left out"
                        ),
                    );
                    continue;
                }
            }
            virtuals.push(Virtual {
                out: out_v,
                line: n,
                service: None,
                checktype: None,
                quiescent: None,
            });
            continue;
        }
        let current = if indented { virtuals.last_mut() } else { None };
        let Some(vs) = current else {
            // The global section.
            match k.as_str() {
                "checktimeout" | "negotiatetimeout" | "connecttimeout" => {
                    defaults.retain(|(x, _)| x != "timeout");
                    defaults.push(("timeout".into(), value(&v)));
                }
                "checkinterval" => defaults.push(("check_interval".into(), value(&v))),
                "quiescent" => global_quiescent = v == "yes",
                "fallback" => {
                    global_fallback = v.split_whitespace().next().map(str::to_string);
                }
                "autoreload" | "logfile" | "supervised" | "fork" | "callback" | "cleanstop"
                | "maintenancedir" | "readdquiescent" | "emailalert" | "emailalertfreq"
                | "emailalertstatus" | "emailalertfrom" | "smtp" | "checkcount"
                | "failurecount" => {
                    note(
                        n,
                        format!(
                            "`{k}`: no equivalent in lvs.cf (Fulcrum reloads on SIGHUP or `fulcrum reload`, logs to stderr or the journal, and mails failover changes only); left out"
                        ),
                    );
                }
                _ => note(n, format!("`{k}` is not understood; left out")),
            }
            continue;
        };
        let keys = &mut vs.out.keys;
        match k.as_str() {
            "real" => {
                let mut w = v.split_whitespace();
                let Some((h, p)) = w.next().and_then(split_host_port) else {
                    note(n, format!("`real={v}`: expected ADDRESS:PORT; left out"));
                    continue;
                };
                let how = w.next().unwrap_or("gate");
                let weight = w.next();
                if w.next().is_some() {
                    note(n, "a request and answer on a `real` line: lvs.cf checks every real server of a virtual server alike (`request`, `receive`); left out".into());
                }
                let hosts = expand(&h).unwrap_or_else(|| vec![h.clone()]);
                for host in hosts {
                    let mut r = ServerOut {
                        name: format!("rs{}", vs.out.servers.len() + 1),
                        ..Default::default()
                    };
                    r.keys.push(("address".into(), value(&host)));
                    r.keys.push(("port".into(), value(&p)));
                    r.keys.push(("active".into(), "1".into()));
                    match forwarding(how) {
                        Some(f) => r.keys.push(("forwarding".into(), f.into())),
                        None => note(n, format!("`{how}` is not gate, masq or ipip; left out")),
                    }
                    if let Some(wt) = weight {
                        r.keys.push(("weight".into(), value(wt)));
                    }
                    vs.out.servers.push(r);
                }
            }
            "service" => vs.service = Some(v.to_ascii_lowercase()),
            "checktype" => vs.checktype = Some(v.to_ascii_lowercase()),
            "scheduler" => keys.push(("scheduler".into(), value(&v))),
            "persistent" => keys.push(("persistent".into(), value(&v))),
            "netmask" => keys.push(("pmask".into(), value(&v))),
            "protocol" => match v.as_str() {
                "tcp" | "udp" | "sctp" => keys.push(("protocol".into(), v.clone())),
                "fwm" => {}
                _ => note(n, format!("protocol `{v}` is unknown; left out")),
            },
            "request" => {
                let path = if v.starts_with('/') || v.contains("://") {
                    v.clone()
                } else {
                    format!("/{v}")
                };
                keys.push(("request".into(), value(&path)));
            }
            "receive" => keys.push(("receive".into(), value(&v))),
            "virtualhost" => keys.push(("virtualhost".into(), value(&v))),
            "checktimeout" | "negotiatetimeout" | "connecttimeout" => {
                keys.retain(|(x, _)| x != "timeout");
                keys.push(("timeout".into(), value(&v)));
            }
            "checkinterval" => keys.push(("check_interval".into(), value(&v))),
            "checkcommand" => keys.push(("send_program".into(), value(&v))),
            "fallback" => {
                let a = v.split_whitespace().next().unwrap_or_default();
                keys.push(("sorry_server".into(), value(a)));
            }
            "quiescent" => vs.quiescent = Some(v == "yes"),
            "comment" | "servicename" => {
                vs.out.origin.push_str(&format!("; {k}: {v}"));
            }
            "checkport" | "httpmethod" | "login" | "passwd" | "database" | "secret"
            | "emailalert" | "emailalertfreq" | "emailalertstatus" | "monitorfile"
            | "cleanstop" | "failurecount" | "checkcount" => {
                note(n, format!("`{k}`: no equivalent in lvs.cf; left out"));
            }
            _ => note(n, format!("`{k}` is not understood; left out")),
        }
    }
    for mut vs in virtuals {
        let check = match vs.checktype.as_deref().unwrap_or("negotiate") {
            "negotiate" => match vs.service.as_deref() {
                Some(s) => match negotiate_check(s) {
                    Some(c) => Some(c.to_string()),
                    None => {
                        notes.push(Note {
                            line: vs.line,
                            message: format!("`service={s}` has no lvs.cf check: its real servers get a connect check"),
                        });
                        Some("connect".into())
                    }
                },
                // ldirectord's default: negotiate by the port's service.
                None => Some(
                    match vs
                        .out
                        .keys
                        .iter()
                        .find(|(k, _)| k == "port")
                        .map(|(_, p)| p.as_str())
                    {
                        Some("80") => "http_get",
                        Some("443") => "https_get",
                        _ => "connect",
                    }
                    .into(),
                ),
            },
            "connect" => Some("connect".into()),
            "ping" => Some("ping".into()),
            "external" | "external-perl" => Some("external".into()),
            "off" | "on" => Some("off".into()),
            other if other.chars().all(|c| c.is_ascii_digit()) => {
                notes.push(Note {
                    line: vs.line,
                    message: format!("`checktype={other}` (negotiate every {other}th check): lvs.cf negotiates every check"),
                });
                vs.service
                    .as_deref()
                    .and_then(negotiate_check)
                    .map(str::to_string)
                    .or(Some("connect".into()))
            }
            other => {
                notes.push(Note {
                    line: vs.line,
                    message: format!("`checktype={other}` is unknown: a connect check instead"),
                });
                Some("connect".into())
            }
        };
        if let Some(c) = check {
            vs.out.keys.push(("checktype".into(), c));
        }
        for (k, v) in &defaults {
            if !vs.out.keys.iter().any(|(x, _)| x == k) {
                vs.out.keys.push((k.clone(), v.clone()));
            }
        }
        if vs.quiescent.unwrap_or(global_quiescent) {
            vs.out.keys.push(("quiesce_server".into(), "1".into()));
        }
        if !vs.out.keys.iter().any(|(k, _)| k == "sorry_server")
            && let Some(f) = &global_fallback
        {
            vs.out.keys.push(("sorry_server".into(), value(f)));
        }
        out.virtuals.push(vs.out);
    }
    notes.sort_by_key(|n| n.line);
    Imported {
        text: out.render(
            "Imported from ldirectord.cf by `fulcrum import`: check it with `fulcrum check`.\nSettings with no lvs.cf equivalent were reported on standard error.",
        ),
        notes,
    }
}
