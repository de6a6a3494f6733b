//! Where a key path sits in JSON5 source text, so validation errors can name `file:line:col`.
//!
//! The `json5` crate parses values but keeps no positions. This is a small scanner that walks the same
//! text (strings, comments, identifiers, numbers, brackets) and records the position of every value by
//! its dotted path (`gateway.auth.mode`, `list[0]`). It never fails: on text it does not understand it
//! simply records less, and the caller then omits the position.
use std::collections::HashMap;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

/// Positions of every value and key in a document.
#[derive(Debug, Default)]
pub struct Locations {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Locations {
    /// Position of the value at `path` (or of its key when the value was not recorded).
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.values.get(path).or_else(|| self.keys.get(path)).copied()
    }

    /// Position of the key at `path` (for unknown-key errors).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).or_else(|| self.values.get(path)).copied()
    }
}

struct Scanner<'a> {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
    out: &'a mut Locations,
}

/// Scan `src` and return the positions of its values.
pub fn locate(src: &str) -> Locations {
    let mut out = Locations::default();
    let mut s = Scanner { chars: src.chars().collect(), i: 0, line: 1, col: 1, out: &mut out };
    s.skip_ws();
    s.value(String::new(), 0);
    out
}

const MAX_DEPTH: usize = 128;

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }

    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.chars.get(self.i + 1) == Some(&'/') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                Some('/') if self.chars.get(self.i + 1) == Some(&'*') => {
                    self.bump();
                    self.bump();
                    while let Some(c) = self.bump() {
                        if c == '*' && self.peek() == Some('/') {
                            self.bump();
                            break;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn string(&mut self) -> String {
        let quote = self.bump().unwrap_or('"');
        let mut s = String::new();
        while let Some(c) = self.bump() {
            match c {
                '\\' => {
                    if let Some(n) = self.bump() {
                        s.push(n);
                    }
                }
                c if c == quote => break,
                c => s.push(c),
            }
        }
        s
    }

    fn bare(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | ':' | '}' | ']' | '{' | '[' | '/') {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    fn value(&mut self, path: String, depth: usize) {
        let here = self.pos();
        self.out.values.entry(path.clone()).or_insert(here);
        if depth > MAX_DEPTH {
            return;
        }
        match self.peek() {
            Some('{') => {
                self.bump();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some('}') | None => {
                            self.bump();
                            return;
                        }
                        Some(',') => {
                            self.bump();
                            continue;
                        }
                        _ => {}
                    }
                    let key_pos = self.pos();
                    let key = match self.peek() {
                        Some('"') | Some('\'') => self.string(),
                        _ => self.bare(),
                    };
                    if key.is_empty() && self.peek() != Some(':') {
                        self.bump(); // not understood; make progress
                        continue;
                    }
                    let child = if path.is_empty() { key } else { format!("{path}.{key}") };
                    self.out.keys.entry(child.clone()).or_insert(key_pos);
                    self.skip_ws();
                    if self.peek() == Some(':') {
                        self.bump();
                    }
                    self.skip_ws();
                    self.value(child, depth + 1);
                }
            }
            Some('[') => {
                self.bump();
                let mut index = 0;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(']') | None => {
                            self.bump();
                            return;
                        }
                        Some(',') => {
                            self.bump();
                            continue;
                        }
                        _ => {}
                    }
                    let before = self.i;
                    self.value(format!("{path}[{index}]"), depth + 1);
                    index += 1;
                    if self.i == before {
                        self.bump();
                    }
                }
            }
            Some('"') | Some('\'') => {
                self.string();
            }
            _ => {
                self.bare();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_through_comments_and_arrays() {
        let src = "// top\n{\n  gateway: {\n    port: \"abc\", /* c */\n    'auth': { mode: 'token' },\n  },\n  list: [1, {a: 2}],\n}\n";
        let l = locate(src);
        assert_eq!(l.value("gateway.port"), Some(Pos { line: 4, col: 11 }));
        assert_eq!(l.key("gateway.auth"), Some(Pos { line: 5, col: 5 }));
        assert_eq!(l.value("gateway.auth.mode"), Some(Pos { line: 5, col: 21 }));
        assert_eq!(l.value("list[1].a"), Some(Pos { line: 7, col: 17 }));
    }

    #[test]
    fn never_panics_on_garbage() {
        for src in ["{", "}", "{\"a\":", "[[[", "{a b c}", "'unterminated", "{/*", ""] {
            let _ = locate(src);
        }
    }
}
