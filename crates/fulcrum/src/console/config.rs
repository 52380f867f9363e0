//! The console's configuration editors: lvs.cf changed in place (comments
//! and order kept), `serial_no` moved on, checked as `fulcrum check` checks,
//! written whole, applied by reload — and put back when the director
//! refuses it, so a change that cannot apply is not left in the file.

use std::collections::HashMap;
use std::path::Path;

use fulcrum_api::auth;
use fulcrum_api::control::{Request, Response};
use fulcrum_config::edit::{self, Edit, Scope};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Resp, Shared, View, api_error, ask, html, json, pages};
use fulcrum_api::control::ControlMsg;

/// A diagnostic of an edited file, placed at the field it concerns.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Placed {
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The line in the edited text.
    pub line: usize,
    /// The message, then its hint.
    pub message: String,
    /// The hint.
    pub hint: Option<String>,
    /// The field: `f.SCOPE.KEY.NTH` (see [`field_id`]), or `scope.SCOPE`
    /// for a block's header; none for the file as a whole.
    pub field: Option<String>,
    /// Where the line is.
    pub scope: Option<ScopeJson>,
    /// The key on the line.
    pub key: Option<String>,
}

/// A scope as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScopeJson {
    /// The `virtual` block, none for the global section.
    #[serde(rename = "virtual", default, skip_serializing_if = "Option::is_none")]
    pub virtual_server: Option<String>,
    /// The `server` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl ScopeJson {
    fn of(s: &Scope) -> ScopeJson {
        match s {
            Scope::Global => ScopeJson {
                virtual_server: None,
                server: None,
            },
            Scope::Virtual(v) => ScopeJson {
                virtual_server: Some(v.clone()),
                server: None,
            },
            Scope::Server(v, r) => ScopeJson {
                virtual_server: Some(v.clone()),
                server: Some(r.clone()),
            },
        }
    }

    fn scope(&self) -> Result<Scope, String> {
        match (&self.virtual_server, &self.server) {
            (None, None) => Ok(Scope::Global),
            (Some(v), None) => Ok(Scope::Virtual(v.clone())),
            (Some(v), Some(s)) => Ok(Scope::Server(v.clone(), s.clone())),
            (None, Some(_)) => Err("a `server` needs its `virtual`".into()),
        }
    }
}

/// The id of a scope in a form: `g`, `v3` (the fourth virtual server),
/// `s3-1` (its second real server), by place in the file.
pub(crate) fn scope_id(scopes: &[(Scope, usize)], s: &Scope) -> String {
    let mut v = 0usize;
    let mut r = 0usize;
    for (x, _) in scopes {
        match x {
            Scope::Global => {
                if x == s {
                    return "g".into();
                }
            }
            Scope::Virtual(_) => {
                v += 1;
                r = 0;
                if x == s {
                    return format!("v{}", v - 1);
                }
            }
            Scope::Server(..) => {
                r += 1;
                if x == s {
                    return format!("s{}-{}", v - 1, r - 1);
                }
            }
        }
    }
    String::new()
}

/// A field's name in the editor's form.
pub(crate) fn field_id(scopes: &[(Scope, usize)], w: &edit::Written) -> String {
    format!("f.{}.{}.{}", scope_id(scopes, &w.scope), w.key, w.nth)
}

/// The diagnostics of `text`, each at its field.
pub(crate) fn place(text: &str) -> (bool, Vec<Placed>) {
    let parsed = fulcrum_config::parse(text);
    let written = edit::written(text);
    let scopes = edit::scopes(text);
    let placed = parsed
        .diagnostics
        .iter()
        .map(|d| {
            let at = written.iter().find(|w| w.line == d.span.line);
            let header = scopes.iter().find(|(_, l)| *l == d.span.line && *l > 0);
            Placed {
                severity: if d.is_error() { "error" } else { "warning" },
                line: d.span.line,
                message: d.message.clone(),
                hint: d.hint.clone(),
                field: at
                    .map(|w| field_id(&scopes, w))
                    .or_else(|| header.map(|(s, _)| format!("scope.{}", scope_id(&scopes, s)))),
                scope: at
                    .map(|w| ScopeJson::of(&w.scope))
                    .or_else(|| header.map(|(s, _)| ScopeJson::of(s))),
                key: at.map(|w| w.key.clone()),
            }
        })
        .collect();
    (parsed.has_errors(), placed)
}

/// What became of a change.
pub(crate) enum Outcome {
    /// Written and applied.
    Applied { serial: String, reload: Response },
    /// Not written: the edited text has errors (shown at their fields).
    Invalid { text: String, placed: Vec<Placed> },
    /// Written, refused by the director, and the old file put back.
    Refused { reload: Response },
    /// The file changed since the editor read it.
    Conflict,
    /// Could not be made (the message says why).
    Failed(String),
}

fn hash(text: &str) -> String {
    auth::hex(&auth::sha256(text.as_bytes()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Make `edits` to the file (or to `draft`, a version with errors the
/// operator is still correcting), if it is still the one hashed `base`.
pub(crate) async fn change(
    shared: &Shared,
    ctl: &mpsc::Sender<ControlMsg>,
    base: &str,
    draft: Option<&str>,
    mut edits: Vec<Edit>,
    by: &str,
) -> Outcome {
    let Some(path) = shared.config.as_deref() else {
        return Outcome::Failed(
            "this director runs without a configuration file: there is nothing to edit".into(),
        );
    };
    let _one = shared.editing.lock().await;
    let current = match read(path) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e),
    };
    if hash(&current) != base {
        return Outcome::Conflict;
    }
    let start = draft.unwrap_or(&current);
    if edits.is_empty() && draft.is_none() {
        return Outcome::Failed("nothing changed".into());
    }
    let sets_serial = edits
        .iter()
        .any(|e| matches!(e, Edit::Set { scope: Scope::Global, key, .. } if key == "serial_no"));
    if !sets_serial {
        // From the file on disk: a draft has already been moved on once.
        let mut bump = edit::bump_serial(&current);
        if let (Some(d), Edit::Set { value, .. }) = (draft, &mut bump)
            && edit::written(d)
                .iter()
                .any(|w| w.scope == Scope::Global && w.key == "serial_no" && &w.value == value)
        {
            // The draft carries the next serial already.
        } else {
            edits.push(bump);
        }
    }
    let text = match edit::apply(start, &edits) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e),
    };
    let (errors, placed) = place(&text);
    if errors {
        return Outcome::Invalid { text, placed };
    }
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777)
    };
    if let Err(e) = fulcrum_net::files::write_atomic(path, text.as_bytes(), mode) {
        return Outcome::Failed(format!(
            "cannot write {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (the director runs as a user that cannot write it: see `user` in the configuration reference)"
            } else {
                ""
            }
        ));
    }
    let reload = ask(ctl, Request::Reload).await;
    if reload.exit_code != 0 {
        let back = fulcrum_net::files::write_atomic(path, current.as_bytes(), mode);
        tracing::warn!(by, config = %path.display(), "console: the edited configuration was refused; the file before it is back");
        if let Err(e) = back {
            return Outcome::Failed(format!(
                "the director refused the change ({}) and the file before it could not be put back: {e}; fix {} by hand",
                reload.stderr.trim(),
                path.display()
            ));
        }
        return Outcome::Refused { reload };
    }
    let serial = edit::written(&text)
        .into_iter()
        .find(|w| w.scope == Scope::Global && w.key == "serial_no")
        .map(|w| w.value)
        .unwrap_or_default();
    tracing::info!(by, config = %path.display(), %serial, "console: configuration edited and applied");
    Outcome::Applied { serial, reload }
}

/// Start (`active = 1`) or stop (`active = 0`) a virtual server.
pub(crate) async fn start_stop(
    shared: &Shared,
    ctl: &mpsc::Sender<ControlMsg>,
    name: &str,
    start: bool,
    by: &str,
) -> (bool, String) {
    let Some(path) = shared.config.as_deref() else {
        return (
            false,
            "this director runs without a configuration file".into(),
        );
    };
    let base = match read(path) {
        Ok(t) => hash(&t),
        Err(e) => return (false, e),
    };
    let edits = vec![Edit::Set {
        scope: Scope::Virtual(name.into()),
        key: "active".into(),
        nth: 0,
        value: if start { "1" } else { "0" }.into(),
    }];
    let what = if start { "started" } else { "stopped" };
    match change(shared, ctl, &base, None, edits, by).await {
        Outcome::Applied { serial, .. } => (
            true,
            format!("virtual server `{name}` {what} (serial_no {serial})"),
        ),
        Outcome::Invalid { placed, .. } => (
            false,
            placed
                .iter()
                .filter(|p| p.severity == "error")
                .map(|p| format!("line {}: {}", p.line, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Outcome::Refused { reload } => (
            false,
            format!("the director refused it: {}", reload.stderr.trim()),
        ),
        Outcome::Conflict => (false, "the file changed meanwhile: try again".into()),
        Outcome::Failed(e) => (false, e),
    }
}

/// `GET /config`: the editors.
pub(crate) fn page(shared: &Shared, view: &View) -> Resp {
    let Some(path) = shared.config.as_deref() else {
        return html(
            StatusCode::NOT_FOUND,
            pages::message(
                "No configuration file",
                "This director runs without a configuration file: there is nothing to edit.",
            ),
        );
    };
    match read(path) {
        Ok(text) => {
            let (_, placed) = place(&text);
            html(
                StatusCode::OK,
                pages::editor(view, path, &hash(&text), None, &text, &placed, None),
            )
        }
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Error", &e),
        ),
    }
}

/// The edits a submitted form asks for, against `text` (what the form was
/// made from).
pub(crate) fn form_edits(text: &str, f: &HashMap<String, String>) -> Result<Vec<Edit>, String> {
    let scopes = edit::scopes(text);
    let mut edits = Vec::new();
    for w in edit::written(text) {
        let Some(v) = f.get(&field_id(&scopes, &w)) else {
            continue;
        };
        let v = v.trim();
        if v == w.value {
            continue;
        }
        edits.push(if v.is_empty() {
            Edit::Unset {
                scope: w.scope.clone(),
                key: w.key.clone(),
                nth: w.nth,
            }
        } else {
            Edit::Set {
                scope: w.scope.clone(),
                key: w.key.clone(),
                nth: w.nth,
                value: v.to_string(),
            }
        });
    }
    // Unsets of a repeated key go last first, so places stay right.
    edits.sort_by_key(|e| match e {
        Edit::Unset { nth, .. } => std::cmp::Reverse(*nth),
        _ => std::cmp::Reverse(usize::MAX),
    });
    let written = edit::written(text);
    for (s, _) in &scopes {
        let id = scope_id(&scopes, s);
        let key = f.get(&format!("add.{id}.key")).map(|k| k.trim());
        let value = f.get(&format!("add.{id}.value")).map(|v| v.trim());
        if let (Some(k), Some(v)) = (key, value)
            && !k.is_empty()
            && !v.is_empty()
        {
            let nth = written
                .iter()
                .filter(|w| &w.scope == s && w.key == k)
                .count();
            edits.push(Edit::Set {
                scope: s.clone(),
                key: k.to_string(),
                nth,
                value: v.to_string(),
            });
        }
        if let Scope::Virtual(v) = s
            && let Some(name) = f.get(&format!("new.{id}")).map(|n| n.trim())
            && !name.is_empty()
        {
            let sc = Scope::Server(v.clone(), name.to_string());
            edits.push(Edit::AddBlock(sc.clone()));
            if let Some(addr) = f.get(&format!("new.{id}.address")).map(|a| a.trim())
                && !addr.is_empty()
            {
                edits.push(Edit::Set {
                    scope: sc.clone(),
                    key: "address".into(),
                    nth: 0,
                    value: addr.into(),
                });
            }
            edits.push(Edit::Set {
                scope: sc,
                key: "active".into(),
                nth: 0,
                value: "1".into(),
            });
        }
    }
    if let Some(name) = f.get("new.virtual").map(|n| n.trim())
        && !name.is_empty()
    {
        edits.push(Edit::AddBlock(Scope::Virtual(name.to_string())));
        for key in ["address", "port", "scheduler"] {
            if let Some(v) = f.get(&format!("new.virtual.{key}")).map(|v| v.trim())
                && !v.is_empty()
            {
                edits.push(Edit::Set {
                    scope: Scope::Virtual(name.to_string()),
                    key: key.into(),
                    nth: 0,
                    value: v.into(),
                });
            }
        }
        edits.push(Edit::Set {
            scope: Scope::Virtual(name.to_string()),
            key: "active".into(),
            nth: 0,
            value: "0".into(),
        });
    }
    // Removals last: the places of everything else refer to the text as
    // it was.
    for (s, _) in scopes.iter().rev() {
        if *s != Scope::Global && f.get(&format!("remove.{}", scope_id(&scopes, s))).is_some() {
            edits.push(Edit::RemoveBlock(s.clone()));
        }
    }
    Ok(edits)
}

/// `POST /config`: the editors' form.
pub(crate) async fn submit(
    shared: &Shared,
    ctl: &mpsc::Sender<ControlMsg>,
    view: &View,
    f: &HashMap<String, String>,
) -> Resp {
    let Some(path) = shared.config.clone() else {
        return page(shared, view);
    };
    let base = f.get("base").cloned().unwrap_or_default();
    let draft = f.get("draft").filter(|d| !d.is_empty()).cloned();
    let from = match &draft {
        Some(d) => d.clone(),
        None => match read(&path) {
            Ok(t) => t,
            Err(e) => {
                return html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pages::message("Error", &e),
                );
            }
        },
    };
    let edits = match form_edits(&from, f) {
        Ok(e) => e,
        Err(e) => return html(StatusCode::BAD_REQUEST, pages::message("Refused", &e)),
    };
    let again = |status, text: &str, placed: &[Placed], note: (bool, String)| {
        html(
            status,
            pages::editor(
                view,
                &path,
                &base,
                draft
                    .as_deref()
                    .or(Some(text))
                    .filter(|_| !placed.is_empty() || draft.is_some()),
                text,
                placed,
                Some(&note),
            ),
        )
    };
    match change(shared, ctl, &base, draft.as_deref(), edits, &view.user).await {
        Outcome::Applied { serial, reload } => {
            let msg = format!(
                "Saved {} (serial_no {serial}) and applied: {}",
                path.display(),
                reload.stdout.trim()
            );
            let text = read(&path).unwrap_or_default();
            let (_, placed) = place(&text);
            html(
                StatusCode::OK,
                pages::editor(
                    view,
                    &path,
                    &hash(&text),
                    None,
                    &text,
                    &placed,
                    Some(&(true, msg)),
                ),
            )
        }
        Outcome::Invalid { text, placed } => {
            let n = placed.iter().filter(|p| p.severity == "error").count();
            again(
                StatusCode::UNPROCESSABLE_ENTITY,
                &text,
                &placed,
                (
                    false,
                    format!(
                        "Not saved: {n} error{} (shown at the fields). The file is unchanged.",
                        if n == 1 { "" } else { "s" }
                    ),
                ),
            )
        }
        Outcome::Refused { reload } => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &from,
            &[],
            (
                false,
                format!(
                    "The director refused the change and the file is as it was: {}",
                    reload.stderr.trim()
                ),
            ),
        ),
        Outcome::Conflict => html(
            StatusCode::CONFLICT,
            pages::message(
                "The file changed",
                "Someone changed the configuration since this editor opened: nothing was saved. Open the editor again.",
            ),
        ),
        Outcome::Failed(e) => again(StatusCode::UNPROCESSABLE_ENTITY, &from, &[], (false, e)),
    }
}

/// One `key = value` for the API.
#[derive(Debug, Serialize)]
struct Entry {
    #[serde(flatten)]
    scope: ScopeJson,
    key: String,
    nth: usize,
    value: String,
    line: usize,
}

/// `GET /api/v1/config`.
pub(crate) fn api_get(shared: &Shared) -> Resp {
    let Some(path) = shared.config.as_deref() else {
        return api_error(
            StatusCode::NOT_FOUND,
            "this director runs without a configuration file",
        );
    };
    match read(path) {
        Ok(text) => {
            let (_, placed) = place(&text);
            let entries: Vec<Entry> = edit::written(&text)
                .into_iter()
                .map(|w| Entry {
                    scope: ScopeJson::of(&w.scope),
                    key: w.key,
                    nth: w.nth,
                    value: w.value,
                    line: w.line,
                })
                .collect();
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "path": path.display().to_string(),
                    "sha256": hash(&text),
                    "text": text,
                    "entries": entries,
                    "diagnostics": placed,
                }),
            )
        }
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// An edit as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ApiEdit {
    Set {
        #[serde(flatten)]
        scope: ScopeJson,
        key: String,
        #[serde(default)]
        nth: usize,
        value: String,
    },
    Unset {
        #[serde(flatten)]
        scope: ScopeJson,
        key: String,
        #[serde(default)]
        nth: usize,
    },
    AddBlock {
        #[serde(flatten)]
        scope: ScopeJson,
    },
    RemoveBlock {
        #[serde(flatten)]
        scope: ScopeJson,
    },
}

#[derive(Debug, Deserialize)]
struct ApiChange {
    /// `sha256` of the file the edits were made against.
    base: String,
    edits: Vec<ApiEdit>,
}

/// `POST /api/v1/config`.
pub(crate) async fn api_post(
    shared: &Shared,
    ctl: &mpsc::Sender<ControlMsg>,
    body: &[u8],
    by: &str,
) -> Resp {
    let req: ApiChange = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a change ({{\"base\": SHA256, \"edits\": [...]}}, see /api/v1/openapi.json): {e}"
                ),
            );
        }
    };
    let mut edits = Vec::new();
    for e in req.edits {
        let r = match e {
            ApiEdit::Set {
                scope,
                key,
                nth,
                value,
            } => scope.scope().map(|scope| Edit::Set {
                scope,
                key,
                nth,
                value,
            }),
            ApiEdit::Unset { scope, key, nth } => {
                scope.scope().map(|scope| Edit::Unset { scope, key, nth })
            }
            ApiEdit::AddBlock { scope } => scope.scope().map(Edit::AddBlock),
            ApiEdit::RemoveBlock { scope } => scope.scope().map(Edit::RemoveBlock),
        };
        match r {
            Ok(e) => edits.push(e),
            Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
        }
    }
    match change(shared, ctl, &req.base, None, edits, by).await {
        Outcome::Applied { serial, reload } => json(
            StatusCode::OK,
            &serde_json::json!({ "serial_no": serial, "reload": reload }),
        ),
        Outcome::Invalid { placed, .. } => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": "the edited file has errors; nothing was written",
                "diagnostics": placed,
            }),
        ),
        Outcome::Refused { reload } => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": "the director refused the edited file; the file is as it was",
                "reload": reload,
            }),
        ),
        Outcome::Conflict => api_error(
            StatusCode::CONFLICT,
            "the file changed since `base` was read: GET /api/v1/config again",
        ),
        Outcome::Failed(e) => api_error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "serial_no = 3\npeer = 10.0.0.2\npeer = 10.0.0.3\n\nvirtual web {\n\tactive = 1\n\taddress = 10.0.0.100\n\tport = 80\n\tserver rs1 {\n\t\taddress = 10.0.1.1\n\t\tactive = 1\n\t\tweight = 1\n\t}\n}\n";

    fn f(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn scope_ids_follow_the_file() {
        let s = edit::scopes(FILE);
        let rs1 = Scope::Server("web".into(), "rs1".into());
        assert_eq!(scope_id(&s, &Scope::Global), "g");
        assert_eq!(scope_id(&s, &Scope::Virtual("web".into())), "v0");
        assert_eq!(scope_id(&s, &rs1), "s0-0");
        let _ = rs1;
        assert_eq!(scope_id(&s, &Scope::Virtual("nope".into())), "");
    }

    #[test]
    fn a_form_makes_only_the_edits_it_changed() {
        let e = form_edits(
            FILE,
            &f(&[
                ("f.g.serial_no.0", "3"),
                ("f.s0-0.weight.0", "5"),
                ("f.g.peer.1", ""),
                ("add.v0.key", "persistent"),
                ("add.v0.value", "300"),
                ("new.v0", "rs2"),
                ("new.v0.address", "10.0.1.2"),
                ("csrf", "x"),
            ]),
        )
        .unwrap();
        let out = edit::apply(FILE, &e).unwrap();
        assert!(out.contains("\t\tweight = 5\n"), "{out}");
        assert!(out.contains("peer = 10.0.0.2\n\nvirtual"), "{out}");
        assert!(out.contains("\tport = 80\n\tpersistent = 300\n"), "{out}");
        assert!(
            out.contains("\tserver rs2 {\n\t\taddress = 10.0.1.2\n\t\tactive = 1\n\t}\n}"),
            "{out}"
        );
        let p = fulcrum_config::parse(&out);
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        assert!(
            form_edits(FILE, &f(&[("f.g.serial_no.0", "3")]))
                .unwrap()
                .is_empty()
        );
        let e = form_edits(FILE, &f(&[("remove.s0-0", "on")])).unwrap();
        assert!(!edit::apply(FILE, &e).unwrap().contains("rs1"));
    }

    #[test]
    fn diagnostics_land_at_their_fields() {
        let bad = FILE.replace("weight = 1", "weight = heavy");
        let (errors, placed) = place(&bad);
        assert!(errors);
        let p = placed.iter().find(|p| p.severity == "error").unwrap();
        assert_eq!(p.field.as_deref(), Some("f.s0-0.weight.0"));
        assert_eq!(p.key.as_deref(), Some("weight"));
        assert_eq!(
            p.scope,
            Some(ScopeJson {
                virtual_server: Some("web".into()),
                server: Some("rs1".into())
            })
        );
    }
}
