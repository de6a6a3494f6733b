//! Markdown to each channel's markup, and splitting long text.
//!
//! The agent writes Markdown. Telegram gets its HTML subset (`<b> <i> <code> <pre> <a>`), Matrix gets
//! `formatted_body` HTML beside the plain `body`, IRC and the QA bus get plain text that keeps code
//! and link targets. Text is split on the Markdown source (paragraphs, then lines, then words, never
//! inside a character), and a split inside a code fence closes and reopens the fence, so each chunk
//! renders on its own.

/// Split `text` into chunks of at most `limit` bytes.
pub fn chunk(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    let mut out = Vec::new();
    let mut rest = text.trim_end();
    let mut reopen: Option<String> = None;
    while !rest.is_empty() {
        let prefix = reopen.take().unwrap_or_default();
        let room = limit.saturating_sub(prefix.len() + 4).max(8);
        if rest.len() <= room {
            out.push(format!("{prefix}{rest}"));
            break;
        }
        let window = crate::clip(rest, room);
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i > room / 3).map(|i| i + sep.len()))
            .unwrap_or(window.len());
        let (head, tail) = rest.split_at(cut);
        let mut piece = format!("{prefix}{}", head.trim_end());
        // Inside an open fence: close it here, reopen it in the next chunk.
        if let Some(fence) = open_fence(&piece) {
            piece.push_str("\n```");
            reopen = Some(format!("{fence}\n"));
        }
        out.push(piece);
        rest = tail.trim_start_matches('\n');
    }
    out
}

/// The opening line of a code fence left open in `s`, if any.
fn open_fence(s: &str) -> Option<String> {
    let mut open = None;
    for line in s.lines() {
        if line.trim_start().starts_with("```") {
            open = match open {
                None => Some(line.trim().to_string()),
                Some(_) => None,
            };
        }
    }
    open
}

/// Escape `& < >` for HTML.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The markup a channel takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// HTML (Telegram's subset, Matrix `formatted_body`).
    Html,
    /// Plain text: markers removed, links as `text (url)`.
    Plain,
}

/// Render Markdown.
pub fn render(md: &str, markup: Markup) -> String {
    let mut out = String::new();
    let mut in_fence = false;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            match (in_fence, markup) {
                (false, Markup::Html) => {
                    let lang = trimmed.trim_start_matches('`').trim();
                    if i > 0 {
                        out.push('\n');
                    }
                    if lang.is_empty() {
                        out.push_str("<pre><code>");
                    } else {
                        out.push_str(&format!("<pre><code class=\"language-{}\">", escape_html(lang)));
                    }
                }
                (true, Markup::Html) => out.push_str("</code></pre>"),
                (_, Markup::Plain) => {}
            }
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            let code = if markup == Markup::Html { escape_html(line) } else { line.to_string() };
            if !out.is_empty() && !out.ends_with('>') {
                out.push('\n');
            }
            out.push_str(&code);
            if markup == Markup::Html {
                out.push('\n');
            }
            continue;
        }
        if i > 0 && !out.is_empty() {
            out.push('\n');
        }
        let heading = trimmed.trim_start_matches('#');
        if trimmed.starts_with('#') && heading.starts_with(' ') {
            let inner = inline(heading.trim(), markup);
            out.push_str(&if markup == Markup::Html { format!("<b>{inner}</b>") } else { inner });
        } else {
            out.push_str(&inline(line, markup));
        }
    }
    if in_fence && markup == Markup::Html {
        out.push_str("</code></pre>");
    }
    out.replace("\n</code></pre>", "</code></pre>")
}

/// Inline Markdown: `code`, **bold**, *italic* / _italic_, [text](url).
fn inline(s: &str, markup: Markup) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let esc = |t: &str| if markup == Markup::Html { escape_html(t) } else { t.to_string() };
    while i < chars.len() {
        let c = chars[i];
        let rest: String = chars[i..].iter().collect();
        if c == '`' {
            if let Some(end) = rest[1..].find('`') {
                let code = &rest[1..1 + end];
                out.push_str(&match markup {
                    Markup::Html => format!("<code>{}</code>", escape_html(code)),
                    Markup::Plain => code.to_string(),
                });
                i += code.chars().count() + 2;
                continue;
            }
        }
        if let Some(body) = rest.strip_prefix("**") {
            if let Some(end) = body.find("**").filter(|&e| e > 0) {
                let inner = inline(&body[..end], markup);
                out.push_str(&if markup == Markup::Html { format!("<b>{inner}</b>") } else { inner });
                i += body[..end].chars().count() + 4;
                continue;
            }
        }
        if (c == '*' || c == '_') && chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) {
            let word_start = i == 0 || !chars[i - 1].is_alphanumeric();
            if let Some(end) = rest[1..].find(c).filter(|&e| e > 0) {
                let inner_raw = &rest[1..1 + end];
                let after = rest[1 + end + 1..].chars().next();
                if word_start && !inner_raw.ends_with(' ') && after.is_none_or(|a| !a.is_alphanumeric()) {
                    let inner = inline(inner_raw, markup);
                    out.push_str(&if markup == Markup::Html { format!("<i>{inner}</i>") } else { inner });
                    i += inner_raw.chars().count() + 2;
                    continue;
                }
            }
        }
        if c == '[' {
            if let Some(close) = rest.find("](") {
                if let Some(end) = rest[close + 2..].find(')') {
                    let text = &rest[1..close];
                    let url = &rest[close + 2..close + 2 + end];
                    if !url.contains(' ') && !text.contains('[') {
                        out.push_str(&match markup {
                            Markup::Html => {
                                format!("<a href=\"{}\">{}</a>", escape_html(url).replace('"', "&quot;"), esc(text))
                            }
                            Markup::Plain if text == url => url.to_string(),
                            Markup::Plain => format!("{text} ({url})"),
                        });
                        i += rest[..close + 2 + end + 1].chars().count();
                        continue;
                    }
                }
            }
        }
        out.push_str(&esc(&c.to_string()));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_plain() {
        let md = "# Title\nSome **bold** and *it* with `a<b` and [docs](https://x.y/a?b=1&c=2).\n```rust\nlet x = 1 < 2;\n```";
        let html = render(md, Markup::Html);
        assert_eq!(
            html,
            "<b>Title</b>\nSome <b>bold</b> and <i>it</i> with <code>a&lt;b</code> and \
             <a href=\"https://x.y/a?b=1&amp;c=2\">docs</a>.\n<pre><code class=\"language-rust\">let x = 1 &lt; 2;</code></pre>"
        );
        let plain = render(md, Markup::Plain);
        assert_eq!(plain, "Title\nSome bold and it with a<b and docs (https://x.y/a?b=1&c=2).\nlet x = 1 < 2;");
        // snake_case and 2*3*4 stay as they are
        assert_eq!(render("snake_case_name 2*3*4", Markup::Plain), "snake_case_name 2*3*4");
        assert_eq!(render("<script>", Markup::Html), "&lt;script&gt;");
    }

    #[test]
    fn chunks_respect_the_limit_and_fences() {
        let text = "para one is here.\n\npara two is a bit longer than that.\n\nthree";
        let c = chunk(text, 40);
        assert!(c.iter().all(|p| p.len() <= 40), "{c:?}");
        assert_eq!(c.join(" ").split_whitespace().count(), text.split_whitespace().count());
        let code = format!("```\n{}\n```", (0..40).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n"));
        let c = chunk(&code, 100);
        assert!(c.len() > 2);
        for p in &c {
            assert!(p.len() <= 100, "{p}");
            assert_eq!(p.matches("```").count() % 2, 0, "every chunk closes its fence: {p}");
        }
        // multi-byte text never splits inside a character
        let c = chunk(&"é".repeat(100), 31);
        assert!(c.iter().all(|p| p.len() <= 31 && p.chars().all(|ch| ch == 'é')));
        assert_eq!(c.concat().chars().count(), 100);
    }
}
