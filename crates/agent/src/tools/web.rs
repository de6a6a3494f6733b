//! `web_fetch`: GET a URL, strip HTML to text, cap the size.
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{str_arg, ToolContext, ToolOutput};

const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
const DEFAULT_MAX_CHARS: usize = 20_000;

/// Remove tags, scripts and styles; collapse blank runs.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'<' {
            for skip in ["script", "style"] {
                if lower[i + 1..].starts_with(skip) {
                    let close = format!("</{skip}");
                    i = lower[i..].find(&close).map(|p| i + p).unwrap_or(bytes.len());
                    break;
                }
            }
            let name: String =
                lower[i + 1..].trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            let block = [
                "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "table",
                "ul", "ol",
            ]
            .contains(&name.as_str());
            match html[i..].find('>') {
                Some(p) => i += p + 1,
                None => break,
            }
            out.push(if block { '\n' } else { ' ' });
            continue;
        }
        let next = html[i..].find('<').map(|p| i + p).unwrap_or(bytes.len());
        out.push_str(&html[i..next]);
        i = next;
    }
    let decoded = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ");
    decoded
        .split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) async fn fetch(
    args: &Value,
    ctx: &ToolContext,
    cancel: &CancellationToken,
) -> Result<ToolOutput, ToolOutput> {
    let url = str_arg(args, "url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ToolOutput::err(format!("{url}: only http and https URLs can be fetched")));
    }
    let max_chars = args.get("maxChars").and_then(Value::as_u64).map(|m| m as usize).unwrap_or(DEFAULT_MAX_CHARS);
    let get = async {
        let mut resp = ctx
            .http
            .get(url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| ToolOutput::err(format!("{url}: {e}")))?;
        let status = resp.status();
        let html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("html"));
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ToolOutput::err(format!("{url}: {e}")))? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY_BYTES {
                break;
            }
        }
        Ok::<_, ToolOutput>((status, html, body))
    };
    let (status, html, body) = tokio::select! {
        r = get => r?,
        _ = cancel.cancelled() => return Err(ToolOutput::err("fetch aborted")),
    };
    let text = String::from_utf8_lossy(&body);
    let text = if html { html_to_text(&text) } else { text.into_owned() };
    let shown: String = text.chars().take(max_chars).collect();
    let out = format!("HTTP {}\n{shown}", status.as_u16());
    if status.is_success() {
        Ok(ToolOutput::ok(out))
    } else {
        Err(ToolOutput::err(out))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_tags_scripts_and_entities() {
        let t = super::html_to_text("<html><head><style>p{}</style><script>x()</script></head><body><p>Hello &amp; <b>bye</b></p>\n\n<p>two</p></body></html>");
        assert_eq!(t, "Hello & bye\ntwo");
    }
}
