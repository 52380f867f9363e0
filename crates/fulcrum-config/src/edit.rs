//! Editing lvs.cf text in place: set, remove and add keys and blocks while
//! every other byte of the file — comments, blank lines, order, spacing —
//! stays as the operator wrote it. The console's editors use this; the
//! result is meant to be checked with [`parse`](crate::parse) before it is
//! written.

use crate::diag::Span;
use crate::syntax::{self, Node, Token};

/// Where a key lives in lvs.cf.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The global section (top level).
    Global,
    /// `virtual NAME { … }`.
    Virtual(String),
    /// `server NAME { … }` inside `virtual VIRTUAL { … }`.
    Server(String, String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Global => write!(f, "the global section"),
            Scope::Virtual(v) => write!(f, "virtual server `{v}`"),
            Scope::Server(v, s) => write!(f, "real server `{s}` of virtual server `{v}`"),
        }
    }
}

/// One change to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Give `key` the value `value` (written as it would be after `=`),
    /// replacing the value in place or adding the line at the end of the
    /// scope.
    Set {
        /// Where.
        scope: Scope,
        /// The key.
        key: String,
        /// Which of the key's lines (0: the first; keys such as `peer`
        /// repeat). Past the last, a line is added.
        nth: usize,
        /// The value's text, as written in lvs.cf (quotes included).
        value: String,
    },
    /// Remove `key`'s `nth` line, if there is one.
    Unset {
        /// Where.
        scope: Scope,
        /// The key.
        key: String,
        /// Which of its lines.
        nth: usize,
    },
    /// Add an empty `virtual` or `server` block (at the end of the file, or
    /// at the end of its virtual server).
    AddBlock(Scope),
    /// Remove a `virtual` or `server` block, from its header to its `}`.
    RemoveBlock(Scope),
}

/// One `key = value` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Where it is.
    pub scope: Scope,
    /// The key.
    pub key: String,
    /// Which of the key's lines in its scope (from 0).
    pub nth: usize,
    /// The value's text as written (quotes included), without comments.
    pub value: String,
    /// Its line, from 1.
    pub line: usize,
}

/// A block found in the tree, with the lines it spans.
struct Found<'a> {
    header: usize,
    close: Option<usize>,
    items: &'a [Node],
}

fn name_of(words: &[Token]) -> Option<&str> {
    words.first().map(|w| w.text.as_str())
}

fn find_virtual<'a>(nodes: &'a [Node], name: &str) -> Option<Found<'a>> {
    nodes.iter().find_map(|n| match n {
        Node::Block {
            kind,
            words,
            items,
            close,
        } if kind.text == "virtual" && name_of(words) == Some(name) => Some(Found {
            header: kind.span.line,
            close: *close,
            items,
        }),
        _ => None,
    })
}

fn find_server<'a>(nodes: &'a [Node], v: &str, name: &str) -> Option<Found<'a>> {
    let vs = find_virtual(nodes, v)?;
    vs.items.iter().find_map(|n| match n {
        Node::Block {
            kind,
            words,
            items,
            close,
        } if kind.text == "server" && name_of(words) == Some(name) => Some(Found {
            header: kind.span.line,
            close: *close,
            items,
        }),
        _ => None,
    })
}

fn items_of<'a>(nodes: &'a [Node], scope: &Scope) -> Option<&'a [Node]> {
    match scope {
        Scope::Global => Some(nodes),
        Scope::Virtual(v) => find_virtual(nodes, v).map(|f| f.items),
        Scope::Server(v, s) => find_server(nodes, v, s).map(|f| f.items),
    }
}

fn assign<'a>(items: &'a [Node], key: &str, nth: usize) -> Option<(&'a Token, &'a [Token])> {
    items
        .iter()
        .filter_map(|n| match n {
            Node::Assign { key: k, values } if k.text == key => Some((k, values.as_slice())),
            _ => None,
        })
        .nth(nth)
}

/// The file as lines, each with its own line ending.
fn lines(src: &str) -> Vec<String> {
    let mut v: Vec<String> = src.split_inclusive('\n').map(str::to_string).collect();
    if v.last().is_some_and(|l| !l.ends_with('\n')) {
        let last = v.len() - 1;
        v[last].push('\n');
    }
    v
}

fn chars_between(line: &str, from: usize, to: usize) -> String {
    line.chars()
        .skip(from)
        .take(to.saturating_sub(from))
        .collect()
}

fn indent_of(line: &str) -> String {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// The file's unit of indentation: what its first block's first line adds
/// to the block's header (a tab when the file has no block with content).
fn indent_unit(nodes: &[Node], ls: &[String]) -> String {
    nodes
        .iter()
        .find_map(|n| match n {
            Node::Block { kind, items, .. } => {
                let first = items.first().map(|i| match i {
                    Node::Assign { key, .. } => key.span.line,
                    Node::Block { kind, .. } => kind.span.line,
                })?;
                let outer = indent_of(&ls[kind.span.line - 1]);
                let inner = indent_of(&ls[first - 1]);
                inner
                    .strip_prefix(&outer)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
            }
            Node::Assign { .. } => None,
        })
        .unwrap_or_else(|| "\t".into())
}

fn end_col(t: &Span) -> usize {
    t.col - 1 + t.len
}

/// Every `key = value` of the file, as written, in file order.
pub fn written(src: &str) -> Vec<Written> {
    let mut diags = Vec::new();
    let nodes = syntax::parse(src, &mut diags);
    let text: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    fn walk(nodes: &[Node], scope: &Scope, text: &[&str], out: &mut Vec<Written>) {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for n in nodes {
            match n {
                Node::Assign { key, values } => {
                    let (Some(first), Some(last)) = (values.first(), values.last()) else {
                        continue;
                    };
                    let line = text.get(key.span.line - 1).copied().unwrap_or_default();
                    let nth = seen.entry(key.text.as_str()).or_default();
                    out.push(Written {
                        scope: scope.clone(),
                        key: key.text.clone(),
                        nth: *nth,
                        value: chars_between(line, first.span.col - 1, end_col(&last.span)),
                        line: key.span.line,
                    });
                    *nth += 1;
                }
                Node::Block {
                    kind, words, items, ..
                } => {
                    let Some(name) = name_of(words) else { continue };
                    let inner = match (scope, kind.text.as_str()) {
                        (Scope::Global, "virtual") => Scope::Virtual(name.to_string()),
                        (Scope::Virtual(v), "server") => Scope::Server(v.clone(), name.to_string()),
                        _ => continue,
                    };
                    walk(items, &inner, text, out);
                }
            }
        }
    }
    walk(&nodes, &Scope::Global, &text, &mut out);
    out
}

/// Every scope of the file in file order: the global section, then each
/// virtual server followed by its real servers; with the line of each
/// block's header (0 for the global section).
pub fn scopes(src: &str) -> Vec<(Scope, usize)> {
    let mut diags = Vec::new();
    let nodes = syntax::parse(src, &mut diags);
    let mut out = vec![(Scope::Global, 0)];
    for n in &nodes {
        if let Node::Block {
            kind, words, items, ..
        } = n
            && kind.text == "virtual"
            && let Some(v) = name_of(words)
        {
            out.push((Scope::Virtual(v.into()), kind.span.line));
            for i in items {
                if let Node::Block { kind, words, .. } = i
                    && kind.text == "server"
                    && let Some(s) = name_of(words)
                {
                    out.push((Scope::Server(v.into(), s.into()), kind.span.line));
                }
            }
        }
    }
    out
}

/// A block name or key the editor can write on a line of its own.
fn check_word(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !"#\"{}=\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{s}` cannot be written: use letters, digits and punctuation other than # \" {{ }} = \\, no spaces"
        ))
    }
}

fn check_value(key: &str, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err(format!(
            "`{key}` needs a value; remove the key instead of leaving it empty"
        ));
    }
    if v.contains(['\n', '\r']) {
        return Err(format!(
            "the value of `{key}` spans lines; write line breaks inside quotes as \\n"
        ));
    }
    Ok(())
}

fn apply_one(src: &str, edit: &Edit) -> Result<String, String> {
    let mut diags = Vec::new();
    let nodes = syntax::parse(src, &mut diags);
    let mut ls = lines(src);
    match edit {
        Edit::Set {
            scope,
            key,
            nth,
            value,
        } => {
            check_word("the key", key)?;
            check_value(key, value)?;
            let items = items_of(&nodes, scope).ok_or_else(|| format!("there is no {scope}"))?;
            match assign(items, key, *nth) {
                Some((k, values)) => {
                    let (first, last) = (
                        values.first().map_or(k.span, |t| t.span),
                        values.last().map_or(k.span, |t| t.span),
                    );
                    let line = &ls[k.span.line - 1];
                    let n = line.chars().count();
                    let new = format!(
                        "{}{value}{}",
                        chars_between(line, 0, first.col - 1),
                        chars_between(line, end_col(&last), n)
                    );
                    ls[k.span.line - 1] = new;
                }
                None => {
                    // At the end of the scope, indented as its last line.
                    let (at, indent) = match scope {
                        Scope::Global => {
                            let last = nodes.iter().rev().find_map(|n| match n {
                                Node::Assign { key, .. } => Some(key.span.line),
                                Node::Block { .. } => None,
                            });
                            let first_block = nodes.iter().find_map(|n| match n {
                                Node::Block { kind, .. } => Some(kind.span.line),
                                Node::Assign { .. } => None,
                            });
                            match (last, first_block) {
                                (Some(l), _) => (l, indent_of(&ls[l - 1])),
                                (None, Some(b)) => (b - 1, String::new()),
                                (None, None) => (ls.len(), String::new()),
                            }
                        }
                        Scope::Virtual(_) | Scope::Server(..) => {
                            let f = match scope {
                                Scope::Virtual(v) => find_virtual(&nodes, v),
                                Scope::Server(v, s) => find_server(&nodes, v, s),
                                Scope::Global => None,
                            }
                            .ok_or_else(|| format!("there is no {scope}"))?;
                            let close = f.close.ok_or_else(|| {
                                format!("{scope} is never closed with `}}`; fix the file first")
                            })?;
                            let last_assign = f.items.iter().rev().find_map(|n| match n {
                                Node::Assign { key, .. } => Some(key.span.line),
                                Node::Block { .. } => None,
                            });
                            let indent = match last_assign {
                                Some(l) => indent_of(&ls[l - 1]),
                                None => format!(
                                    "{}{}",
                                    indent_of(&ls[f.header - 1]),
                                    indent_unit(&nodes, &ls)
                                ),
                            };
                            // Keys go before the scope's blocks, so a virtual
                            // server's keys stay above its servers.
                            let first_block = f.items.iter().find_map(|n| match n {
                                Node::Block { kind, .. } => Some(kind.span.line),
                                Node::Assign { .. } => None,
                            });
                            let at = match (last_assign, first_block) {
                                (Some(l), _) => l,
                                (None, Some(b)) => b - 1,
                                (None, None) => close - 1,
                            };
                            (at, indent)
                        }
                    };
                    ls.insert(at, format!("{indent}{key} = {value}\n"));
                }
            }
        }
        Edit::Unset { scope, key, nth } => {
            let items = items_of(&nodes, scope).ok_or_else(|| format!("there is no {scope}"))?;
            if let Some((k, _)) = assign(items, key, *nth) {
                ls.remove(k.span.line - 1);
            }
        }
        Edit::AddBlock(scope) => match scope {
            Scope::Global => return Err("the global section cannot be added".into()),
            Scope::Virtual(v) => {
                check_word("the virtual server's name", v)?;
                if find_virtual(&nodes, v).is_some() {
                    return Err(format!("{scope} exists already; choose another name"));
                }
                if ls.last().is_some_and(|l| !l.trim().is_empty()) {
                    ls.push("\n".into());
                }
                ls.push(format!("virtual {v} {{\n"));
                ls.push("}\n".into());
            }
            Scope::Server(v, s) => {
                check_word("the real server's name", s)?;
                let f = find_virtual(&nodes, v)
                    .ok_or_else(|| format!("there is no virtual server `{v}`"))?;
                if find_server(&nodes, v, s).is_some() {
                    return Err(format!("{scope} exists already; choose another name"));
                }
                let close = f.close.ok_or_else(|| {
                    format!("virtual server `{v}` is never closed with `}}`; fix the file first")
                })?;
                let indent = format!(
                    "{}{}",
                    indent_of(&ls[f.header - 1]),
                    indent_unit(&nodes, &ls)
                );
                ls.insert(close - 1, format!("{indent}}}\n"));
                ls.insert(close - 1, format!("{indent}server {s} {{\n"));
            }
        },
        Edit::RemoveBlock(scope) => {
            let f = match scope {
                Scope::Global => return Err("the global section cannot be removed".into()),
                Scope::Virtual(v) => find_virtual(&nodes, v),
                Scope::Server(v, s) => find_server(&nodes, v, s),
            }
            .ok_or_else(|| format!("there is no {scope}"))?;
            let close = f
                .close
                .ok_or_else(|| format!("{scope} is never closed with `}}`; fix the file first"))?;
            ls.drain(f.header - 1..close);
        }
    }
    Ok(ls.concat())
}

/// Apply `edits` in order to lvs.cf text. Nothing is checked beyond what
/// each edit needs (the scope exists, the value is one line): parse the
/// result before using it.
///
/// # Errors
/// The first edit that cannot be made, saying why; the text is then
/// unchanged.
pub fn apply(src: &str, edits: &[Edit]) -> Result<String, String> {
    let mut text = src.to_string();
    for e in edits {
        text = apply_one(&text, e)?;
    }
    Ok(text)
}

/// The line of `key` in `scope` (to put a diagnostic next to the field that
/// set it), or of the scope's header when the key is not there.
pub fn line_of(src: &str, scope: &Scope, key: &str) -> Option<usize> {
    span_of(src, scope, key).map(|s| s.line)
}

/// Where a key's value is written in `src` (its first word; the key itself
/// when it has none), or where its block starts when the key is not there:
/// what a diagnostic about the key points at.
pub fn span_of(src: &str, scope: &Scope, key: &str) -> Option<crate::diag::Span> {
    let mut diags = Vec::new();
    let nodes = syntax::parse(src, &mut diags);
    let items = items_of(&nodes, scope)?;
    if let Some((k, values)) = assign(items, key, 0) {
        return Some(values.first().map_or(k.span, |v| v.span));
    }
    let header = match scope {
        Scope::Global => return None,
        Scope::Virtual(v) => find_virtual(&nodes, v)?.header,
        Scope::Server(v, s) => find_server(&nodes, v, s)?.header,
    };
    Some(crate::diag::Span {
        line: header,
        col: 1,
        len: 1,
    })
}

/// The edit that moves `serial_no` on by one (to 1 when the file has none),
/// as piranha does on every change.
pub fn bump_serial(src: &str) -> Edit {
    let next = written(src)
        .into_iter()
        .find(|w| w.scope == Scope::Global && w.key == "serial_no")
        .and_then(|w| w.value.trim_matches('"').parse::<u64>().ok())
        .map_or(1, |n| n.saturating_add(1));
    Edit::Set {
        scope: Scope::Global,
        key: "serial_no".into(),
        nth: 0,
        value: next.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# the cluster\nserial_no = 7   # bumped by hand\nprimary = 10.0.0.1\n\nvirtual web {\n    # the front\n    active = 1\n    address = 10.0.0.100 eth0:1\n    scheduler = wlc\n    server rs1 {\n        active = 1\n        address = 10.0.1.1\n        weight = 1 # small box\n    }\n}\n";

    fn set(scope: Scope, key: &str, value: &str) -> Edit {
        Edit::Set {
            scope,
            key: key.into(),
            nth: 0,
            value: value.into(),
        }
    }

    fn rs1() -> Scope {
        Scope::Server("web".into(), "rs1".into())
    }

    #[test]
    fn a_value_changes_in_place_keeping_spacing_and_comments() {
        let out = apply(FILE, &[set(rs1(), "weight", "3")]).unwrap();
        assert_eq!(
            out,
            FILE.replace("weight = 1 # small box", "weight = 3 # small box")
        );
        let out = apply(
            FILE,
            &[set(Scope::Virtual("web".into()), "address", "10.0.0.101")],
        )
        .unwrap();
        assert!(out.contains("    address = 10.0.0.101\n"), "{out}");
        let p = crate::parse(&out);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    }

    #[test]
    fn a_new_key_goes_after_the_scopes_last_key_with_its_indent() {
        let out = apply(FILE, &[set(rs1(), "uthreshold", "100")]).unwrap();
        assert!(
            out.contains("        weight = 1 # small box\n        uthreshold = 100\n    }\n"),
            "{out}"
        );
        let out = apply(
            FILE,
            &[set(Scope::Virtual("web".into()), "persistent", "300")],
        )
        .unwrap();
        assert!(
            out.contains("    scheduler = wlc\n    persistent = 300\n    server rs1 {"),
            "{out}"
        );
        let out = apply(FILE, &[set(Scope::Global, "backup_active", "0")]).unwrap();
        assert!(
            out.contains("primary = 10.0.0.1\nbackup_active = 0\n\nvirtual"),
            "{out}"
        );
    }

    #[test]
    fn blocks_are_added_and_removed_whole() {
        let out = apply(
            FILE,
            &[
                Edit::AddBlock(Scope::Server("web".into(), "rs2".into())),
                set(
                    Scope::Server("web".into(), "rs2".into()),
                    "address",
                    "10.0.1.2",
                ),
                set(Scope::Server("web".into(), "rs2".into()), "active", "1"),
            ],
        )
        .unwrap();
        assert!(
            out.ends_with("    }\n    server rs2 {\n        address = 10.0.1.2\n        active = 1\n    }\n}\n"),
            "{out}"
        );
        let p = crate::parse(&out);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.config.virtuals[0].servers.len(), 2);
        let back = apply(
            &out,
            &[Edit::RemoveBlock(Scope::Server("web".into(), "rs2".into()))],
        )
        .unwrap();
        assert_eq!(back, FILE);
        let out = apply(FILE, &[Edit::RemoveBlock(Scope::Virtual("web".into()))]).unwrap();
        assert_eq!(
            out,
            "# the cluster\nserial_no = 7   # bumped by hand\nprimary = 10.0.0.1\n\n"
        );
    }

    #[test]
    fn unset_removes_the_line_only() {
        let out = apply(
            FILE,
            &[Edit::Unset {
                scope: Scope::Virtual("web".into()),
                key: "scheduler".into(),
                nth: 0,
            }],
        )
        .unwrap();
        assert_eq!(out, FILE.replace("    scheduler = wlc\n", ""));
    }

    #[test]
    fn what_cannot_be_written_is_refused_and_nothing_changes() {
        let e = apply(FILE, &[set(rs1(), "weight", "1\nprimary = 6.6.6.6")]).unwrap_err();
        assert!(e.contains("spans lines"), "{e}");
        let e = apply(FILE, &[set(Scope::Virtual("nope".into()), "weight", "1")]).unwrap_err();
        assert_eq!(e, "there is no virtual server `nope`");
        let e = apply(FILE, &[set(rs1(), "weight", " ")]).unwrap_err();
        assert!(e.contains("needs a value"), "{e}");
        let e = apply(FILE, &[Edit::AddBlock(Scope::Virtual("a b".into()))]).unwrap_err();
        assert!(e.contains("no spaces"), "{e}");
        let e = apply(FILE, &[Edit::AddBlock(rs1())]).unwrap_err();
        assert!(e.contains("exists already"), "{e}");
        let e = apply(
            "virtual web {\n",
            &[set(Scope::Virtual("web".into()), "a", "1")],
        )
        .unwrap_err();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn written_values_and_lines_and_the_serial() {
        let w = written(FILE);
        assert_eq!(
            w[0],
            Written {
                scope: Scope::Global,
                key: "serial_no".into(),
                nth: 0,
                value: "7".into(),
                line: 2
            }
        );
        assert!(w.contains(&Written {
            scope: Scope::Virtual("web".into()),
            key: "address".into(),
            nth: 0,
            value: "10.0.0.100 eth0:1".into(),
            line: 8
        }));
        assert_eq!(bump_serial(FILE), set(Scope::Global, "serial_no", "8"));
        assert_eq!(bump_serial(""), set(Scope::Global, "serial_no", "1"));
        assert_eq!(line_of(FILE, &rs1(), "weight"), Some(13));
        assert_eq!(line_of(FILE, &rs1(), "nope"), Some(10));
        let out = apply("", &[bump_serial("")]).unwrap();
        assert_eq!(out, "serial_no = 1\n");
    }

    #[test]
    fn scopes_in_file_order() {
        assert_eq!(
            scopes(FILE),
            vec![
                (Scope::Global, 0),
                (Scope::Virtual("web".into()), 5),
                (rs1(), 10)
            ]
        );
    }

    #[test]
    fn repeated_keys_are_edited_by_their_place() {
        let f = "peer = 10.0.0.2\npeer = 10.0.0.3\n";
        let second = |value: &str| Edit::Set {
            scope: Scope::Global,
            key: "peer".into(),
            nth: 1,
            value: value.into(),
        };
        assert_eq!(
            apply(f, &[second("10.0.0.9")]).unwrap(),
            "peer = 10.0.0.2\npeer = 10.0.0.9\n"
        );
        let third = Edit::Set {
            scope: Scope::Global,
            key: "peer".into(),
            nth: 2,
            value: "10.0.0.4".into(),
        };
        assert_eq!(
            apply(f, &[third]).unwrap(),
            "peer = 10.0.0.2\npeer = 10.0.0.3\npeer = 10.0.0.4\n"
        );
        let unset = Edit::Unset {
            scope: Scope::Global,
            key: "peer".into(),
            nth: 0,
        };
        assert_eq!(apply(f, &[unset]).unwrap(), "peer = 10.0.0.3\n");
        assert_eq!(written(f)[1].nth, 1);
    }

    #[test]
    fn a_file_without_a_final_newline_and_with_crlf() {
        let out = apply(
            "primary = 1.2.3.4",
            &[set(Scope::Global, "primary", "5.6.7.8")],
        )
        .unwrap();
        assert_eq!(out, "primary = 5.6.7.8\n");
        let out = apply(
            "primary = 1.2.3.4\r\nvirtual a {\r\n}\r\n",
            &[set(Scope::Global, "primary", "5.6.7.8")],
        )
        .unwrap();
        assert_eq!(out, "primary = 5.6.7.8\r\nvirtual a {\r\n}\r\n");
    }
}
