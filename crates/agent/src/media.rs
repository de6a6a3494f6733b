//! Media generation against provider HTTP APIs: OpenAI Images (`POST /images/generations`),
//! OpenAI Videos (`POST /videos`, poll `GET /videos/{id}`, download `/videos/{id}/content`), and
//! MiniMax music (`POST /v1/music_generation`). Every call is bounded in time and size.
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Largest media file accepted (100 MiB).
const MAX_MEDIA_BYTES: usize = 100 * 1024 * 1024;

/// A provider endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEndpoint {
    /// Base URL (`https://api.openai.com/v1`, `https://api.minimax.io`), no trailing slash.
    pub base_url: String,
    /// API key.
    pub api_key: String,
}

/// A generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// File extension (`png`, `mp4`, `mp3`).
    pub ext: &'static str,
}

async fn json_call(req: reqwest::RequestBuilder, what: &str, cancel: &CancellationToken) -> Result<Value, String> {
    let resp = tokio::select! {
        r = req.timeout(Duration::from_secs(300)).send() => r.map_err(|e| format!("{what}: {e}"))?,
        _ = cancel.cancelled() => return Err(format!("{what}: cancelled")),
    };
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("{what}: {e}"))?;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        return Err(format!("{what} failed (HTTP {}): {msg}", status.as_u16()));
    }
    Ok(v)
}

async fn download(req: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>, String> {
    let mut resp = req.timeout(Duration::from_secs(300)).send().await.map_err(|e| format!("{what}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{what} failed (HTTP {})", resp.status().as_u16()));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{what}: {e}"))? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_MEDIA_BYTES {
            return Err(format!("{what}: the file is larger than {MAX_MEDIA_BYTES} bytes"));
        }
    }
    Ok(out)
}

/// OpenAI Images: one image for `prompt`.
pub async fn openai_image(
    http: &reqwest::Client,
    ep: &MediaEndpoint,
    model: &str,
    prompt: &str,
    size: Option<&str>,
    cancel: &CancellationToken,
) -> Result<MediaFile, String> {
    let mut body = json!({"model": model, "prompt": prompt, "n": 1});
    if let Some(s) = size {
        body["size"] = json!(s);
    }
    let req = http.post(format!("{}/images/generations", ep.base_url)).bearer_auth(&ep.api_key).json(&body);
    let v = json_call(req, "image generation", cancel).await?;
    let item = &v["data"][0];
    let bytes = if let Some(b64) = item["b64_json"].as_str() {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("image generation: bad base64: {e}"))?
    } else if let Some(url) = item["url"].as_str() {
        download(http.get(url), "image download").await?
    } else {
        return Err("image generation: the response has no image".into());
    };
    Ok(MediaFile { bytes, ext: "png" })
}

/// A video to make.
#[derive(Debug, Clone)]
pub struct VideoRequest<'a> {
    /// Model id (`sora-2`).
    pub model: &'a str,
    /// What to show.
    pub prompt: &'a str,
    /// Length, when asked.
    pub seconds: Option<u64>,
    /// Time between status polls.
    pub poll_every: Duration,
    /// Give up after this long.
    pub deadline: Duration,
}

/// OpenAI Videos: create, poll until done, download.
pub async fn openai_video(
    http: &reqwest::Client,
    ep: &MediaEndpoint,
    r: &VideoRequest<'_>,
    cancel: &CancellationToken,
) -> Result<MediaFile, String> {
    let (model, prompt, poll_every, deadline) = (r.model, r.prompt, r.poll_every, r.deadline);
    let mut body = json!({"model": model, "prompt": prompt});
    if let Some(s) = r.seconds {
        body["seconds"] = json!(s.to_string());
    }
    let req = http.post(format!("{}/videos", ep.base_url)).bearer_auth(&ep.api_key).json(&body);
    let job = json_call(req, "video generation", cancel).await?;
    let id = job["id"].as_str().ok_or("video generation: the response has no job id")?.to_string();
    let started = Instant::now();
    loop {
        let req = http.get(format!("{}/videos/{id}", ep.base_url)).bearer_auth(&ep.api_key);
        let v = json_call(req, "video status", cancel).await?;
        match v["status"].as_str() {
            Some("completed") => break,
            Some("failed") | Some("cancelled") => {
                return Err(format!(
                    "video generation failed: {}",
                    v["error"]["message"].as_str().unwrap_or("no reason given")
                ))
            }
            _ => {}
        }
        if started.elapsed() > deadline {
            return Err(format!("video generation did not finish within {} s", deadline.as_secs()));
        }
        tokio::select! {
            _ = tokio::time::sleep(poll_every) => {}
            _ = cancel.cancelled() => return Err("video generation: cancelled".into()),
        }
    }
    let req = http.get(format!("{}/videos/{id}/content", ep.base_url)).bearer_auth(&ep.api_key);
    Ok(MediaFile { bytes: download(req, "video download").await?, ext: "mp4" })
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd-length hex".into());
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

/// MiniMax music: one mp3 for `prompt` (and optional lyrics).
pub async fn minimax_music(
    http: &reqwest::Client,
    ep: &MediaEndpoint,
    model: &str,
    prompt: &str,
    lyrics: Option<&str>,
    cancel: &CancellationToken,
) -> Result<MediaFile, String> {
    let mut body = json!({"model": model, "prompt": prompt, "output_format": "hex",
                          "audio_setting": {"sample_rate": 44100, "bitrate": 256000, "format": "mp3"}});
    if let Some(l) = lyrics {
        body["lyrics"] = json!(l);
    }
    let req = http.post(format!("{}/v1/music_generation", ep.base_url)).bearer_auth(&ep.api_key).json(&body);
    let v = json_call(req, "music generation", cancel).await?;
    let code = v["base_resp"]["status_code"].as_i64().unwrap_or(0);
    if code != 0 {
        return Err(format!(
            "music generation failed ({code}): {}",
            v["base_resp"]["status_msg"].as_str().unwrap_or("")
        ));
    }
    let audio = v["data"]["audio"].as_str().ok_or("music generation: the response has no audio")?;
    let bytes = if audio.starts_with("http://") || audio.starts_with("https://") {
        download(http.get(audio), "music download").await?
    } else {
        hex_decode(audio).map_err(|e| format!("music generation: bad audio hex: {e}"))?
    };
    Ok(MediaFile { bytes, ext: "mp3" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex() {
        assert_eq!(super::hex_decode("49443304").unwrap(), b"ID3\x04");
        assert!(super::hex_decode("4").is_err());
    }
}
