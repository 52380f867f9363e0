//! Manual pages: `fulcrum(1)` and one page per command from the command
//! line's own definition (clap_mangen, in `main.rs`), and `lvs.cf(5)` from
//! the configuration reference (docs/config.md), so the page and the
//! reference cannot drift apart.

use std::fmt::Write as _;

/// docs/config.md, built in.
pub const CONFIG_REFERENCE: &str = include_str!("../../../docs/config.md");

/// Escape text for roff, and turn Markdown's inline marks into fonts.
fn inline(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    let mut code = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => o.push_str("\\e"),
            '`' => {
                o.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                // Bold runs are short: open and close alternate.
                let opened = o.matches("\\fB").count() > o.matches("\\fR").count();
                o.push_str(if opened { "\\fR" } else { "\\fB" });
            }
            '-' => o.push_str("\\-"),
            c => o.push(c),
        }
    }
    if code {
        o.push_str("\\fR");
    }
    // Markdown links: keep the text, drop the target.
    let mut out = String::with_capacity(o.len());
    let mut rest = o.as_str();
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](") else {
            break;
        };
        let Some(close) = rest[open + mid..].find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..open + mid]);
        rest = &rest[open + mid + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A line of text that roff must not read as a request.
fn text_line(s: &str) -> String {
    let t = inline(s.trim());
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    // `|` inside backticks belongs to the cell (`auto` \| `proxy`).
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut code = false;
    let mut prev = ' ';
    for c in inner.chars() {
        match c {
            '`' => {
                code = !code;
                cur.push(c);
            }
            '|' if !code && prev != '\\' => {
                out.push(cur.trim().replace("\\|", "|"));
                cur.clear();
            }
            c => cur.push(c),
        }
        prev = c;
    }
    out.push(cur.trim().replace("\\|", "|"));
    out
}

/// `lvs.cf(5)`: the configuration reference as a manual page.
pub fn lvs_cf_page(version: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        ".TH LVS.CF 5 \"\" \"Fulcrum {version}\" \"File Formats\"\n.SH NAME\nlvs.cf \\- the configuration of the Fulcrum director (Piranha's lvs.cf, with extensions)"
    );
    let mut header: Vec<String> = Vec::new();
    let mut in_code = false;
    let mut para = false;
    for line in CONFIG_REFERENCE.lines() {
        if line.starts_with("```") {
            if in_code {
                o.push_str(".fi\n.RE\n");
            } else {
                o.push_str(".PP\n.RS 4\n.nf\n");
            }
            in_code = !in_code;
            para = false;
            continue;
        }
        if in_code {
            let l = line.replace('\\', "\\e");
            let l = if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            };
            let _ = writeln!(o, "{l}");
            continue;
        }
        if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(o, ".SH DESCRIPTION\n{}", text_line(h));
            para = false;
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(o, ".SH \"{}\"", inline(h).to_uppercase().replace('"', ""));
            para = false;
        } else if let Some(h) = line.strip_prefix("### ") {
            let _ = writeln!(o, ".SS \"{}\"", inline(h).replace('"', ""));
            para = false;
        } else if line.starts_with('|') {
            let c = cells(line);
            if c.iter().all(|x| x.chars().all(|ch| ch == '-' || ch == ':')) {
                continue;
            }
            if header.is_empty() {
                header = c;
                continue;
            }
            let _ = writeln!(o, ".TP\n{}", text_line(&c[0]));
            let last = c.len().saturating_sub(1);
            let mut facts = Vec::new();
            for (i, v) in c.iter().enumerate().skip(1).take(last.saturating_sub(1)) {
                let name = header.get(i).map_or("", String::as_str);
                facts.push(format!("{name}: {v}"));
            }
            if !facts.is_empty() {
                let _ = writeln!(o, "{}", text_line(&(facts.join("; ") + ".")));
                o.push_str(".br\n");
            }
            if last > 0 {
                let _ = writeln!(o, "{}", text_line(&c[last]));
            }
            para = false;
            continue;
        } else if line.trim().is_empty() {
            header.clear();
            para = true;
        } else {
            if para {
                o.push_str(".PP\n");
                para = false;
            }
            let t = line.trim_start();
            if let Some(item) = t.strip_prefix("- ") {
                let _ = writeln!(o, ".IP \\(bu 2\n{}", text_line(item));
            } else {
                let _ = writeln!(o, "{}", text_line(t));
            }
        }
    }
    o.push_str(".SH \"SEE ALSO\"\n\\fBfulcrum\\fR(1), \\fBfulcrum\\-check\\fR(1), \\fBfulcrum\\-run\\fR(1), \\fBipvsadm\\fR(8), \\fBkeepalived.conf\\fR(5)\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_marks_become_fonts_and_roff_is_escaped() {
        assert_eq!(inline("`a` and **b**"), "\\fBa\\fR and \\fBb\\fR");
        assert_eq!(inline("a\\b-c"), "a\\eb\\-c");
        assert_eq!(inline("see [the guide](docs/x.md)."), "see the guide.");
        assert_eq!(text_line(".hidden"), "\\&.hidden");
        assert_eq!(cells("| `a` \\| `b` | x |"), ["`a` | `b`", "x"]);
    }

    #[test]
    fn every_key_is_in_the_page() {
        let page = lvs_cf_page("0.0.0");
        for k in fulcrum_config::GLOBAL_KEYS
            .iter()
            .chain(fulcrum_config::VIRTUAL_KEYS)
            .chain(fulcrum_config::SERVER_KEYS)
        {
            let roff = k.replace('-', "\\-");
            assert!(
                page.contains(&format!("\\fB{roff}\\fR")),
                "`{k}` is not documented in docs/config.md (so not in lvs.cf(5))"
            );
        }
    }
}
