//! Diagnostics: `file:line:col: error: what`, the source line, and a hint.

use std::fmt::Write as _;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// The configuration is used, but something will not behave as written.
    Warning,
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (characters).
    pub col: usize,
    /// Length in characters of the thing pointed at (at least 1).
    pub len: usize,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error.
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning.
    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            hint: None,
        }
    }

    /// Attach a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render as `file:line:col: error: what`, then the source line with a
    /// caret under the culprit, then `  hint: …`.
    pub fn render(&self, file: &str, source: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!(
            "{file}:{}:{}: {sev}: {}\n",
            self.span.line, self.span.col, self.message
        );
        if let Some(text) = source.lines().nth(self.span.line.saturating_sub(1)) {
            let num = self.span.line.to_string();
            let pad = " ".repeat(num.len());
            let _ = writeln!(out, " {num} | {text}");
            let lead: String = text
                .chars()
                .take(self.span.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, " {pad} | {lead}{}", "^".repeat(self.span.len.max(1)));
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "  hint: {h}");
        }
        out
    }
}

/// The closest candidate to a misspelt word, if one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_caret_and_hint() {
        let src = "virtual vs1 {\n  schedular = wlc\n}\n";
        let d = Diagnostic::error(
            Span {
                line: 2,
                col: 3,
                len: 9,
            },
            "unknown keyword `schedular`",
        )
        .hint("did you mean `scheduler`?");
        assert_eq!(
            d.render("lvs.cf", src),
            "lvs.cf:2:3: error: unknown keyword `schedular`\n 2 |   schedular = wlc\n   |   ^^^^^^^^^\n  hint: did you mean `scheduler`?\n"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("schedular", ["scheduler", "server"]),
            Some("scheduler")
        );
        assert_eq!(did_you_mean("wcl", ["wlc", "lc", "rr"]), Some("wlc"));
        assert_eq!(did_you_mean("banana", ["wlc", "lc", "rr"]), None);
    }
}
