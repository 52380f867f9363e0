//! The console's pages, rendered on the server: every value from the
//! director or the file goes through [`esc`].

use std::fmt::Write as _;
use std::path::Path;

use fulcrum_api::state::{DirectorState, Sample, VirtualState};
use fulcrum_config::edit::{self, Scope};

use super::View;
use super::config::{Placed, field_id, scope_id};

/// The stylesheet.
pub(crate) const STYLE: &str = include_str!("console.css");
/// The script: refreshes the live view, nothing else.
pub(crate) const SCRIPT: &str = include_str!("console.js");

/// Escape text for HTML (element content and quoted attributes).
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{} — Fulcrum</title><link rel=\"stylesheet\" href=\"/static/console.css\"></head><body>",
        esc(title)
    )
}

fn nav(view: &View, here: &str) -> String {
    let link = |href: &str, label: &str| {
        if href == here {
            format!("<a href=\"{href}\" aria-current=\"page\">{label}</a>")
        } else {
            format!("<a href=\"{href}\">{label}</a>")
        }
    };
    format!(
        "<header><strong class=\"brand\">Fulcrum</strong><nav>{}{}</nav><span class=\"who\">{} ({})</span><form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Log out</button></form></header>",
        link("/", "Live view"),
        if view.has_config {
            link("/config", "Configuration")
        } else {
            String::new()
        },
        esc(&view.user),
        if view.admin { "admin" } else { "read-only" },
        esc(&view.csrf)
    )
}

/// A page with a title and one message.
pub(crate) fn message(title: &str, text: &str) -> String {
    format!(
        "{}<main class=\"narrow\"><h1>{}</h1><p>{}</p><p><a href=\"/\">Back to the live view</a></p></main></body></html>",
        head(title),
        esc(title),
        esc(text)
    )
}

/// The login page.
pub(crate) fn login(nonce: &str, error: Option<&str>) -> String {
    format!(
        "{}<main class=\"narrow login\"><h1>Fulcrum</h1>{}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><button>Log in</button></form></main></body></html>",
        head("Log in"),
        error.map_or(String::new(), |e| format!(
            "<p class=\"flash bad\" role=\"alert\">{}</p>",
            esc(e)
        )),
        esc(nonce)
    )
}

fn rate(bytes: u64) -> String {
    let bits = bytes * 8;
    match bits {
        b if b >= 1_000_000_000 => format!("{:.1} Gbit/s", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} Mbit/s", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kbit/s", b as f64 / 1e3),
        b => format!("{b} bit/s"),
    }
}

/// Connections a second and active connections over the last minutes, as
/// an SVG chart.
fn chart(h: &[Sample]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 80.0;
    if h.len() < 2 {
        return "<p class=\"muted chart-empty\">The chart fills in as the director runs (one point every 5 s).</p>".into();
    }
    let max = h
        .iter()
        .map(|s| s.cps.max(s.active))
        .max()
        .unwrap_or(0)
        .max(1);
    let (t0, t1) = (h[0].t, h[h.len() - 1].t.max(h[0].t + 1));
    let line = |f: &dyn Fn(&Sample) -> u64| {
        h.iter()
            .map(|s| {
                format!(
                    "{:.1},{:.1}",
                    (s.t - t0) as f64 / (t1 - t0) as f64 * W,
                    H - f(s) as f64 / max as f64 * (H - 4.0) - 2.0
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"connections per second and active connections\"><polyline class=\"cps\" points=\"{}\"/><polyline class=\"active\" points=\"{}\"/></svg><figcaption><span class=\"key cps\">conn/s</span> <span class=\"key active\">active</span> over the last {} s; top {max}</figcaption></figure>",
        line(&|s| s.cps),
        line(&|s| s.active),
        t1 - t0
    )
}

fn button(view: &View, action: &str, fields: &[(&str, &str)], label: &str, class: &str) -> String {
    let mut f = format!(
        "<form method=\"post\" action=\"{action}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&view.csrf)
    );
    for (k, v) in fields {
        let _ = write!(
            f,
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            esc(v)
        );
    }
    let _ = write!(f, "<button class=\"{class}\">{label}</button></form>");
    f
}

fn service(st: &DirectorState, s: &VirtualState, view: &View) -> String {
    let mut o = String::new();
    let name = s.name.as_deref().unwrap_or("(added with fulcrum adm)");
    let badge = if s.serving.starts_with("standing by") {
        "standby"
    } else if s.serving == "NOT SERVING" {
        "bad"
    } else {
        "good"
    };
    let _ = write!(
        o,
        "<section class=\"vs\" data-virtual=\"{}\"><h2>{} <small>{}</small> <span class=\"badge {badge}\">{}</span>",
        esc(name),
        esc(name),
        esc(&s.service),
        esc(&s.serving)
    );
    if view.admin
        && view.has_config
        && let Some(n) = &s.name
    {
        o.push_str(&button(
            view,
            "/virtual",
            &[("virtual", n), ("action", "stop")],
            "Stop",
            "quiet",
        ));
    }
    let _ = write!(
        o,
        "</h2><p class=\"stats\">{} · {} connections · {} active / {} inactive · {} conn/s · in {} · out {}{}{}{}</p>",
        esc(&s.scheduler),
        s.conns,
        s.active,
        s.inactive,
        s.cps,
        rate(s.inbps),
        rate(s.outbps),
        s.persistent
            .map_or(String::new(), |p| format!(" · persistent {p} s")),
        if s.refused_no_server > 0 {
            format!(
                " · <strong class=\"bad\">{} refused: no real server</strong>",
                s.refused_no_server
            )
        } else {
            String::new()
        },
        s.sorry_server.as_ref().map_or(String::new(), |a| format!(
            " · <strong class=\"bad\">sorry server {} in</strong>",
            esc(a)
        ))
    );
    o.push_str(&chart(&s.history));
    o.push_str("<table><thead><tr><th>Real server</th><th>Address</th><th>Weight</th><th>State</th><th>Health</th><th>Active</th><th>Inactive</th><th>Connections</th>");
    if view.admin {
        o.push_str("<th>Actions</th>");
    }
    o.push_str("</tr></thead><tbody>");
    for r in &s.servers {
        let health = r.health.as_ref();
        let hs = health.map_or("not checked", |h| h.state.as_str());
        let state = match &r.admin {
            Some(a) => format!("{} by the operator", a),
            None => r.state.clone(),
        };
        let _ = write!(
            o,
            "<tr data-server=\"{}\" data-health=\"{}\" data-in-service=\"{}\" class=\"{}\"><td>{}</td><td>{}</td><td class=\"num weight\">{}</td><td class=\"state\">{}</td><td class=\"health\"><span class=\"dot {}\"></span>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            esc(r.name.as_deref().unwrap_or("")),
            esc(hs),
            r.in_service,
            if r.in_service { "in" } else { "out" },
            esc(r.name.as_deref().unwrap_or("—")),
            esc(&r.address),
            r.weight,
            esc(&state),
            esc(hs),
            esc(&health.map_or_else(|| "not checked".to_string(), |h| h.text.clone())),
            r.active,
            r.inactive,
            r.conns
        );
        if view.admin {
            o.push_str("<td class=\"actions\">");
            if let (Some(v), Some(n)) = (&s.name, &r.name) {
                for (action, label) in [
                    ("drain", "Drain"),
                    ("disable", "Disable"),
                    ("enable", "Enable"),
                ] {
                    let current = match r.admin.as_deref() {
                        Some("drained") => "drain",
                        Some("disabled") => "disable",
                        _ => "enable",
                    };
                    if action != current {
                        o.push_str(&button(
                            view,
                            "/server",
                            &[("virtual", v), ("server", n), ("action", action)],
                            label,
                            action,
                        ));
                    }
                }
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>");
    }
    if s.servers.is_empty() {
        o.push_str("<tr><td colspan=\"9\" class=\"muted\">no real servers</td></tr>");
    }
    o.push_str("</tbody></table></section>");
    let _ = st;
    o
}

/// The live view's content (what the script fetches from `/live` every two
/// seconds).
pub(crate) fn live(st: &DirectorState, view: &View) -> String {
    let mut o = String::new();
    let up = st.uptime_secs;
    let _ = write!(
        o,
        "<section class=\"director\"><p><strong>{}</strong> data plane ({}) · up {}h{:02}m{:02}s · {}{}</p>",
        esc(&st.plane),
        esc(&st.plane_why),
        up / 3600,
        (up / 60) % 60,
        up % 60,
        esc(&st.config),
        st.serial
            .map_or(String::new(), |s| format!(" · serial_no {s}"))
    );
    match &st.failover {
        Some(f) => {
            let class = match f.state.as_str() {
                "MASTER" => "good",
                "BACKUP" => "standby",
                _ => "bad",
            };
            let _ = write!(
                o,
                "<p class=\"failover\">Failover: <span class=\"badge {class}\" data-failover=\"{}\">{}</span> for {} s ({}) · priority {} · virtual router {} · this director {} · peers {}{}</p>",
                esc(&f.state),
                esc(&f.state),
                f.since_secs,
                esc(&f.reason),
                f.priority,
                f.vrid,
                esc(&f.local),
                esc(&f.peers.join(", ")),
                if f.refused > 0 {
                    format!(
                        " · <strong class=\"bad\">{} adverts refused</strong>",
                        f.refused
                    )
                } else {
                    String::new()
                }
            );
            o.push_str("<ul class=\"directors\">");
            for p in &f.directors {
                match (&p.state, p.priority, p.serial, p.heard_secs_ago) {
                    (Some(st), Some(pr), Some(se), Some(ago)) => {
                        let class = match st.as_str() {
                            "MASTER" => "good",
                            "BACKUP" => "standby",
                            _ => "bad",
                        };
                        let _ = write!(
                            o,
                            "<li data-director=\"{}\">director {} <span class=\"badge {class}\">{}</span> priority {pr} · serial_no {se} · hello {ago:.1} s ago</li>",
                            esc(&p.address),
                            esc(&p.address),
                            esc(st)
                        );
                    }
                    _ => {
                        let _ = write!(
                            o,
                            "<li data-director=\"{}\">director {} <span class=\"muted\">no hello heard (a keepalived director sends none; else it is down or unreachable)</span></li>",
                            esc(&p.address),
                            esc(&p.address)
                        );
                    }
                }
            }
            o.push_str("</ul>");
        }
        None => o.push_str("<p class=\"failover muted\">Failover: off (a single director)</p>"),
    }
    if let Some(c) = &st.connections {
        let _ = write!(
            o,
            "<p>{} connections open of max_connections {}{}</p>",
            c.open,
            c.max,
            if c.refused > 0 {
                format!(", {} refused at the limit", c.refused)
            } else {
                String::new()
            }
        );
    }
    for l in &st.sync {
        let _ = write!(o, "<p class=\"muted\">{}</p>", esc(l));
    }
    o.push_str("</section>");
    if st.services.is_empty() {
        o.push_str("<p class=\"muted\">No virtual servers are active.</p>");
    }
    for s in &st.services {
        o.push_str(&service(st, s, view));
    }
    o
}

/// Virtual servers of the file that are not active, with a Start button.
fn stopped(view: &View, config: Option<&str>) -> String {
    let Some(text) = config else {
        return String::new();
    };
    let parsed = fulcrum_config::parse(text);
    let names: Vec<&str> = parsed
        .config
        .virtuals
        .iter()
        .filter(|v| v.active != Some(true))
        .map(|v| v.name.as_str())
        .collect();
    if names.is_empty() {
        return String::new();
    }
    let mut o = String::from("<section class=\"stopped\"><h2>Stopped virtual servers</h2><ul>");
    for n in names {
        let _ = write!(o, "<li data-virtual=\"{}\">{}", esc(n), esc(n));
        if view.admin {
            o.push_str(&button(
                view,
                "/virtual",
                &[("virtual", n), ("action", "start")],
                "Start",
                "enable",
            ));
        }
        o.push_str("</li>");
    }
    o.push_str("</ul></section>");
    o
}

/// The live view.
pub(crate) fn live_page(
    st: &DirectorState,
    view: &View,
    flash: Option<&(bool, String)>,
    config: Option<&str>,
) -> String {
    let log = crate::logring::recent().lines();
    let mut logs = String::new();
    for l in log.iter().rev().take(40).rev() {
        let _ = writeln!(logs, "{}", esc(l));
    }
    format!(
        "{}{}<main>{}<div id=\"live\" data-refresh=\"/live\">{}</div>{}<section class=\"log\"><h2>Recent log</h2><pre>{}</pre></section></main><script src=\"/static/console.js\"></script></body></html>",
        head("Live view"),
        nav(view, "/"),
        flash.map_or(String::new(), |(ok, m)| format!(
            "<p class=\"flash {}\" role=\"status\">{}</p>",
            if *ok { "good" } else { "bad" },
            esc(m)
        )),
        live(st, view),
        stopped(view, config),
        if logs.is_empty() {
            "(nothing logged yet)".into()
        } else {
            logs
        }
    )
}

const REDUNDANCY: &[&str] = &[
    "backup_active",
    "backup",
    "backup_private",
    "backup_shared",
    "heartbeat",
    "heartbeat_port",
    "keepalive",
    "deadtime",
    "priority",
    "preempt",
    "nice_failback",
    "preempt_delay",
    "vrrp_version",
    "virtual_router_id",
    "vrrp_multicast",
    "peer",
    "auth_key_file",
    "monitor_links",
    "ping_node",
    "sync",
    "notify_script",
    "notify_email",
    "notify_email_from",
    "smtp_server",
    "garp_count",
    "garp_delay",
    "hard_shutdown",
];

fn rows(
    o: &mut String,
    scopes: &[(Scope, usize)],
    written: &[&edit::Written],
    placed: &[Placed],
    disabled: &str,
) {
    for w in written {
        let id = field_id(scopes, w);
        let diags: Vec<&Placed> = placed
            .iter()
            .filter(|p| p.field.as_deref() == Some(id.as_str()))
            .collect();
        let _ = write!(
            o,
            "<div class=\"row{}\"><label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{id}\" value=\"{}\"{disabled}>",
            if diags.iter().any(|d| d.severity == "error") {
                " has-error"
            } else {
                ""
            },
            esc(&w.key),
            esc(&w.value)
        );
        for d in diags {
            diag(o, d, &format!(" data-for=\"{id}\""));
        }
        o.push_str("</div>");
    }
}

/// A diagnostic as a paragraph (`attrs` adds attributes).
fn diag(o: &mut String, d: &Placed, attrs: &str) {
    let _ = write!(
        o,
        "<p class=\"diag {}\"{attrs}>{}: {}{}</p>",
        d.severity,
        d.severity,
        esc(&d.message),
        d.hint
            .as_ref()
            .map_or(String::new(), |h| format!(" <em>{}</em>", esc(h)))
    );
}

fn add_row(o: &mut String, id: &str, keys: &[&str], disabled: &str) {
    let _ = write!(
        o,
        "<div class=\"row add\"><select name=\"add.{id}.key\" aria-label=\"key to add\"{disabled}><option value=\"\">add a key…</option>"
    );
    for k in keys {
        let _ = write!(o, "<option>{k}</option>");
    }
    let _ = write!(
        o,
        "</select><input name=\"add.{id}.value\" placeholder=\"value\" aria-label=\"value of the key to add\"{disabled}></div>"
    );
}

fn scope_diags(o: &mut String, id: &str, placed: &[Placed]) {
    for d in placed
        .iter()
        .filter(|p| p.field.as_deref() == Some(&format!("scope.{id}")))
    {
        diag(o, d, "");
    }
}

/// The editors: every key of the file in its section, changeable in
/// place; diagnostics next to their fields.
pub(crate) fn editor(
    view: &View,
    path: &Path,
    base: &str,
    draft: Option<&str>,
    text: &str,
    placed: &[Placed],
    note: Option<&(bool, String)>,
) -> String {
    let scopes = edit::scopes(text);
    let written = edit::written(text);
    let disabled = if view.admin { "" } else { " disabled" };
    let mut o = head("Configuration");
    o.push_str(&nav(view, "/config"));
    let _ = write!(
        o,
        "<main><h1>Configuration <small>{}</small></h1>",
        esc(&path.display().to_string())
    );
    if let Some((ok, m)) = note {
        let _ = write!(
            o,
            "<p class=\"flash {}\" role=\"status\">{}</p>",
            if *ok { "good" } else { "bad" },
            esc(m)
        );
    }
    if !view.admin {
        o.push_str("<p class=\"muted\">Read-only: your role may look, not change.</p>");
    }
    // Diagnostics with no field of their own.
    for d in placed.iter().filter(|p| p.field.is_none()) {
        let _ = write!(
            o,
            "<p class=\"diag {}\">line {}: {}</p>",
            d.severity,
            d.line,
            esc(&d.message)
        );
    }
    let _ = write!(
        o,
        "<form method=\"post\" action=\"/config\" class=\"editor\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"base\" value=\"{}\">",
        esc(&view.csrf),
        esc(base)
    );
    if let Some(d) = draft {
        let _ = write!(o, "<textarea name=\"draft\" hidden>{}</textarea>", esc(d));
    }
    let global: Vec<&edit::Written> = written
        .iter()
        .filter(|w| w.scope == Scope::Global)
        .collect();
    let (red, general): (Vec<&edit::Written>, Vec<&edit::Written>) = global
        .into_iter()
        .partition(|w| REDUNDANCY.contains(&w.key.as_str()));
    o.push_str("<fieldset data-scope=\"g\"><legend>Global settings</legend>");
    rows(&mut o, &scopes, &general, placed, disabled);
    let gkeys: Vec<&str> = fulcrum_config::GLOBAL_KEYS
        .iter()
        .copied()
        .filter(|k| !REDUNDANCY.contains(k))
        .collect();
    add_row(&mut o, "g", &gkeys, disabled);
    o.push_str("</fieldset><fieldset data-scope=\"redundancy\"><legend>Redundancy</legend>");
    rows(&mut o, &scopes, &red, placed, disabled);
    o.push_str("<p class=\"muted\">Add redundancy keys with “add a key…” under Global settings.</p></fieldset>");
    for (s, _) in &scopes {
        let id = scope_id(&scopes, s);
        let mine: Vec<&edit::Written> = written.iter().filter(|w| &w.scope == s).collect();
        let (class, what, name, keys) = match s {
            Scope::Global => continue,
            Scope::Virtual(v) => ("virtual", "Virtual server", v, fulcrum_config::VIRTUAL_KEYS),
            Scope::Server(_, r) => ("server", "Real server", r, fulcrum_config::SERVER_KEYS),
        };
        let _ = write!(
            o,
            "<fieldset class=\"{class}\" data-scope=\"{id}\"><legend>{what} {}</legend>",
            esc(name)
        );
        scope_diags(&mut o, &id, placed);
        rows(&mut o, &scopes, &mine, placed, disabled);
        add_row(&mut o, &id, keys, disabled);
        if class == "virtual" {
            let _ = write!(
                o,
                "<div class=\"row add\"><input name=\"new.{id}\" placeholder=\"new real server's name\" aria-label=\"new real server's name\"{disabled}><input name=\"new.{id}.address\" placeholder=\"its address\" aria-label=\"new real server's address\"{disabled}></div>"
            );
        }
        let _ = write!(
            o,
            "<label class=\"remove\"><input type=\"checkbox\" name=\"remove.{id}\"{disabled}> remove this {}</label>",
            what.to_lowercase()
        );
        if class == "server" {
            o.push_str("</fieldset>");
        }
        // A virtual server's fieldset closes after its last real server.
        let next_is_server = scopes
            .iter()
            .skip_while(|(x, _)| x != s)
            .nth(1)
            .is_some_and(|(x, _)| matches!(x, Scope::Server(..)));
        if !next_is_server {
            o.push_str("</fieldset>");
        }
    }
    let _ = write!(
        o,
        "<fieldset data-scope=\"new\"><legend>Add a virtual server</legend><div class=\"row add\"><input name=\"new.virtual\" placeholder=\"name\" aria-label=\"new virtual server's name\"{disabled}><input name=\"new.virtual.address\" placeholder=\"address\" aria-label=\"new virtual server's address\"{disabled}><input name=\"new.virtual.port\" placeholder=\"port\" aria-label=\"new virtual server's port\"{disabled}><input name=\"new.virtual.scheduler\" placeholder=\"scheduler (wlc)\" aria-label=\"new virtual server's scheduler\"{disabled}></div><p class=\"muted\">A new virtual server starts stopped (<code>active = 0</code>); start it from the live view.</p></fieldset>"
    );
    if view.admin {
        o.push_str("<p><button class=\"primary\">Save and apply</button> <span class=\"muted\">Saving moves <code>serial_no</code> on, checks the file as <code>fulcrum check</code> does, writes it and reloads the director.</span></p>");
    }
    o.push_str("</form></main></body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_hostile_name_in_the_state_is_shown_as_text() {
        let st = DirectorState {
            services: vec![VirtualState {
                name: Some("<img src=x onerror=alert(1)>".into()),
                service: "TCP 10.0.0.1:80".into(),
                servers: vec![fulcrum_api::state::RealState {
                    name: Some("\"><script>alert(1)</script>".into()),
                    address: "10.0.0.2:80".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let view = View {
            user: "a".into(),
            admin: true,
            csrf: "t".into(),
            has_config: true,
        };
        let h = live(&st, &view);
        assert!(!h.contains("<img src=x"), "{h}");
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn every_director_of_the_failover_group_is_shown() {
        use fulcrum_api::state::{Failover, PeerView};
        let st = DirectorState {
            failover: Some(Failover {
                state: "BACKUP".into(),
                directors: vec![
                    PeerView {
                        address: "10.0.0.1".into(),
                        state: Some("MASTER".into()),
                        priority: Some(200),
                        serial: Some(7),
                        heard_secs_ago: Some(0.4),
                    },
                    PeerView {
                        address: "10.0.0.3".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let view = View {
            user: "a".into(),
            admin: false,
            csrf: String::new(),
            has_config: false,
        };
        let h = live(&st, &view);
        assert!(h.contains("<li data-director=\"10.0.0.1\">director 10.0.0.1 <span class=\"badge good\">MASTER</span> priority 200 · serial_no 7 · hello 0.4 s ago</li>"), "{h}");
        assert!(
            h.contains("director 10.0.0.3 <span class=\"muted\">no hello heard"),
            "{h}"
        );
    }

    #[test]
    fn the_chart_scales_to_its_box() {
        let h: Vec<Sample> = (0..10)
            .map(|i| Sample {
                t: i * 5,
                cps: i * 10,
                active: 5,
                ..Default::default()
            })
            .collect();
        let c = chart(&h);
        assert!(c.contains("points=\"0.0,78.0 "), "{c}");
        assert!(c.contains(" 600.0,2.0\""), "{c}");
        assert!(c.contains("over the last 45 s; top 90"), "{c}");
        assert!(chart(&h[..1]).contains("fills in"));
    }
}
