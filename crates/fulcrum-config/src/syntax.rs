//! The lvs.cf syntax: a line-oriented lexer that keeps spans, and a parser
//! into a tree of assignments and blocks. Meaning comes later (`lower`).

use crate::diag::{Diagnostic, Span};

/// A word or a quoted string on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The text, with escapes of quoted strings resolved.
    pub(crate) text: String,
    pub(crate) span: Span,
    pub(crate) quoted: bool,
}

/// A line's meaning in the tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// `key = value …`
    Assign { key: Token, values: Vec<Token> },
    /// `kind words… {` … `}`
    Block {
        kind: Token,
        words: Vec<Token>,
        items: Vec<Node>,
        /// The line of the closing `}` (none when the block is never closed).
        close: Option<usize>,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Lexeme {
    Tok(Token),
    Eq(Span),
    Open(Span),
    Close(Span),
}

fn span(line: usize, col: usize, len: usize) -> Span {
    Span { line, col, len }
}

/// Split one line into lexemes. `#` starts a comment outside quotes; the
/// first `=` is the assignment sign; `{` and `}` are always punctuation.
fn lex_line(line_no: usize, text: &str, diags: &mut Vec<Diagnostic>) -> Vec<Lexeme> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut seen_eq = false;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => break,
            '{' => {
                out.push(Lexeme::Open(span(line_no, col, 1)));
                i += 1;
            }
            '}' => {
                out.push(Lexeme::Close(span(line_no, col, 1)));
                i += 1;
            }
            '=' if !seen_eq => {
                seen_eq = true;
                out.push(Lexeme::Eq(span(line_no, col, 1)));
                i += 1;
            }
            '"' => {
                let start = i;
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        '\\' if i + 1 < chars.len() => {
                            let e = chars[i + 1];
                            match e {
                                'n' => s.push('\n'),
                                'r' => s.push('\r'),
                                't' => s.push('\t'),
                                '\\' => s.push('\\'),
                                '"' => s.push('"'),
                                '\'' => s.push('\''),
                                _ => diags.push(
                                    Diagnostic::error(span(line_no, i + 1, 2), format!("unknown escape `\\{e}` in a quoted string"))
                                        .hint("the escapes are \\n \\r \\t \\\\ \\\" and \\'; write \\\\ for a backslash"),
                                ),
                            }
                            i += 2;
                        }
                        ch => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    diags.push(
                        Diagnostic::error(
                            span(line_no, start + 1, chars.len() - start),
                            "this quoted string is never closed",
                        )
                        .hint("add a closing `\"` on the same line"),
                    );
                }
                out.push(Lexeme::Tok(Token {
                    text: s,
                    span: span(line_no, start + 1, i - start),
                    quoted: true,
                }));
            }
            _ => {
                let start = i;
                while i < chars.len() {
                    let ch = chars[i];
                    if ch.is_whitespace()
                        || ch == '{'
                        || ch == '}'
                        || ch == '#'
                        || ch == '"'
                        || (ch == '=' && !seen_eq)
                    {
                        break;
                    }
                    i += 1;
                }
                out.push(Lexeme::Tok(Token {
                    text: chars[start..i].iter().collect(),
                    span: span(line_no, start + 1, i - start),
                    quoted: false,
                }));
            }
        }
    }
    out
}

struct Frame {
    kind: Token,
    words: Vec<Token>,
    items: Vec<Node>,
}

/// Parse a whole file. Syntax errors are reported and the offending line is
/// skipped, so that one pass reports every problem.
pub(crate) fn parse(src: &str, diags: &mut Vec<Diagnostic>) -> Vec<Node> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for (idx, text) in src.lines().enumerate() {
        let line_no = idx + 1;
        let lex = lex_line(line_no, text, diags);
        if lex.is_empty() {
            continue;
        }
        let push = |stack: &mut Vec<Frame>, top: &mut Vec<Node>, node: Node| match stack.last_mut()
        {
            Some(f) => f.items.push(node),
            None => top.push(node),
        };
        match lex.as_slice() {
            [Lexeme::Close(sp)] => match stack.pop() {
                Some(f) => {
                    let node = Node::Block {
                        kind: f.kind,
                        words: f.words,
                        items: f.items,
                        close: Some(sp.line),
                    };
                    push(&mut stack, &mut top, node);
                }
                None => diags.push(
                    Diagnostic::error(*sp, "this `}` closes no block")
                        .hint("remove it, or add the block header it was meant to close"),
                ),
            },
            [Lexeme::Tok(key), Lexeme::Eq(eq), rest @ ..] => {
                let mut values = Vec::new();
                let mut ok = true;
                for l in rest {
                    match l {
                        Lexeme::Tok(t) => values.push(t.clone()),
                        Lexeme::Open(s) | Lexeme::Close(s) | Lexeme::Eq(s) => {
                            // Spans count characters, not bytes: name the
                            // character by its kind, never by slicing.
                            let c = match l {
                                Lexeme::Open(_) => '{',
                                Lexeme::Close(_) => '}',
                                _ => '=',
                            };
                            diags.push(
                                Diagnostic::error(*s, format!("unexpected `{c}` in the value of `{}`", key.text))
                                    .hint("put blocks on lines of their own; quote the value if the character belongs to it"),
                            );
                            ok = false;
                        }
                    }
                }
                if values.is_empty() {
                    diags.push(
                        Diagnostic::error(*eq, format!("`{}` has no value", key.text))
                            .hint("write a value after `=`, or remove the line"),
                    );
                    ok = false;
                }
                if ok {
                    push(
                        &mut stack,
                        &mut top,
                        Node::Assign {
                            key: key.clone(),
                            values,
                        },
                    );
                }
            }
            [Lexeme::Tok(kind), middle @ .., Lexeme::Open(_)]
                if middle.iter().all(|l| matches!(l, Lexeme::Tok(_))) =>
            {
                let words = middle
                    .iter()
                    .filter_map(|l| match l {
                        Lexeme::Tok(t) => Some(t.clone()),
                        _ => None,
                    })
                    .collect();
                stack.push(Frame {
                    kind: kind.clone(),
                    words,
                    items: Vec::new(),
                });
            }
            [Lexeme::Tok(first), ..]
                if !lex
                    .iter()
                    .any(|l| matches!(l, Lexeme::Eq(_) | Lexeme::Open(_))) =>
            {
                let last = match lex.last() {
                    Some(Lexeme::Tok(t)) => t.span,
                    _ => first.span,
                };
                let whole = span(
                    line_no,
                    first.span.col,
                    last.col + last.len - first.span.col,
                );
                let d = if lex.len() == 1 {
                    Diagnostic::error(whole, format!("`{}` is missing `= value`", first.text))
                        .hint(format!("write `{} = VALUE`", first.text))
                } else {
                    Diagnostic::error(
                        whole,
                        "expected `key = value`, or a block header ending in `{`",
                    )
                    .hint("add `=` after the key, or `{` at the end to open a block")
                };
                diags.push(d);
            }
            _ => {
                let first = match &lex[0] {
                    Lexeme::Tok(t) => t.span,
                    Lexeme::Eq(s) | Lexeme::Open(s) | Lexeme::Close(s) => *s,
                };
                diags.push(
                    Diagnostic::error(first, "cannot make sense of this line")
                        .hint("lines are `key = value`, `name words {` to open a block, or `}` alone to close one"),
                );
            }
        }
    }
    // Blocks still open at the end: report each at the line that opened it.
    while let Some(f) = stack.pop() {
        let mut sp = f.kind.span;
        if let Some(last) = f.words.last() {
            sp.len = last.span.col + last.span.len - sp.col;
        }
        let name: Vec<&str> = std::iter::once(f.kind.text.as_str())
            .chain(f.words.iter().map(|w| w.text.as_str()))
            .collect();
        diags.push(
            Diagnostic::error(
                sp,
                format!("`{} {{` opened here is never closed", name.join(" ")),
            )
            .hint("add a line with `}` where this block ends"),
        );
        let node = Node::Block {
            kind: f.kind,
            words: f.words,
            items: f.items,
            close: None,
        };
        match stack.last_mut() {
            Some(p) => p.items.push(node),
            None => top.push(node),
        }
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_quotes_comments_and_first_equals() {
        let mut d = Vec::new();
        let l = lex_line(1, r#"send = "GET / HTTP/1.0\r\n\r\n" # comment"#, &mut d);
        assert!(d.is_empty());
        assert_eq!(l.len(), 3);
        match &l[2] {
            Lexeme::Tok(t) => {
                assert_eq!(t.text, "GET / HTTP/1.0\r\n\r\n");
                assert!(t.quoted);
            }
            other => panic!("{other:?}"),
        }
        let l = lex_line(1, "send_program = /bin/check --x=1 %h", &mut d);
        assert_eq!(l.len(), 5, "only the first = is punctuation");
    }

    #[test]
    fn nested_blocks_and_unclosed() {
        let mut d = Vec::new();
        let nodes = parse("virtual vs1 {\n server rs1 {\n  weight = 1\n }\n", &mut d);
        assert_eq!(nodes.len(), 1);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].span.line, 1);
        assert!(
            d[0].message
                .contains("`virtual vs1 {` opened here is never closed")
        );
    }
}
