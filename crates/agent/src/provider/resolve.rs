//! From configuration to the ordered list of models a run tries (primary, then fallbacks).
use homarus_config::{HomarusConfig, ProviderConfig};

use super::{Api, ResolvedModel};

/// Default context window when a model entry does not say.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;
/// Default output tokens per call.
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

/// Why no model could be chosen. The message tells the user what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Nothing configured at all.
    #[error(
        "no model configured: set OPENAI_API_KEY or ANTHROPIC_API_KEY, run Ollama on 127.0.0.1:11434, or add \
         models.providers.<id> {{baseUrl, api, models: [{{id}}]}} and agents.defaults.model \"<id>/<model>\""
    )]
    NoModel,
    /// A model ref names a provider that is not configured.
    #[error("{at}: model \"{reference}\" names provider \"{provider}\", which is not configured (add models.providers.{provider})")]
    UnknownProvider {
        /// Config key of the ref.
        at: String,
        /// The ref.
        reference: String,
        /// Its provider part.
        provider: String,
    },
    /// A bare model id matches no configured provider.
    #[error("{at}: model \"{reference}\" is not in any models.providers.*.models; write it as \"<provider>/<model>\"")]
    UnknownModel {
        /// Config key of the ref.
        at: String,
        /// The ref.
        reference: String,
    },
    /// `api` is a format Homarus does not speak.
    #[error("models.providers.{provider}.api: \"{api}\" is not supported; use \"openai-completions\" or \"anthropic-messages\"")]
    UnsupportedApi {
        /// Provider id.
        provider: String,
        /// The value.
        api: String,
    },
}

struct Builtin {
    id: &'static str,
    base_url: &'static str,
    key_env: &'static str,
    default_model: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "openai",
        base_url: "https://api.openai.com/v1",
        key_env: "OPENAI_API_KEY",
        default_model: "gpt-4.1-mini",
    },
    Builtin {
        id: "anthropic",
        base_url: "https://api.anthropic.com",
        key_env: "ANTHROPIC_API_KEY",
        default_model: "claude-sonnet-4-5",
    },
    Builtin { id: "ollama", base_url: "http://127.0.0.1:11434/v1", key_env: "", default_model: "" },
];

fn api_of(id: &str, p: Option<&ProviderConfig>) -> Result<Api, ResolveError> {
    match p.and_then(|p| p.api.as_deref()) {
        None => Ok(if id == "anthropic" { Api::AnthropicMessages } else { Api::OpenAiCompletions }),
        Some("openai-completions") | Some("openai") | Some("ollama") => Ok(Api::OpenAiCompletions),
        Some("anthropic-messages") => Ok(Api::AnthropicMessages),
        Some(other) => Err(ResolveError::UnsupportedApi { provider: id.to_string(), api: other.to_string() }),
    }
}

fn build(
    cfg: &HomarusConfig,
    provider: &str,
    model: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ResolvedModel>, ResolveError> {
    let configured = cfg.models.providers.get(provider);
    let builtin = BUILTINS.iter().find(|b| b.id == provider);
    if configured.is_none() && builtin.is_none() {
        return Ok(None);
    }
    let api = api_of(provider, configured)?;
    let base_url = configured
        .and_then(|p| p.base_url.clone())
        .or_else(|| builtin.map(|b| b.base_url.to_string()))
        .unwrap_or_else(|| "http://127.0.0.1:11434/v1".into());
    // Keys from the environment only for the provider they belong to: a custom endpoint never
    // receives the user's OpenAI or Anthropic key by accident.
    let api_key = configured
        .and_then(|p| p.api_key.clone())
        .or_else(|| builtin.filter(|b| !b.key_env.is_empty()).and_then(|b| env(b.key_env)))
        .filter(|k| !k.is_empty());
    let entry = configured.and_then(|p| p.models.iter().find(|m| m.id == model));
    Ok(Some(ResolvedModel {
        provider: provider.to_string(),
        model: model.to_string(),
        api,
        base_url: base_url.trim_end_matches('/').to_string(),
        api_key,
        headers: configured.map(|p| p.headers.clone().into_iter().collect()).unwrap_or_default(),
        context_window: entry.and_then(|e| e.context_tokens.or(e.context_window)).unwrap_or(DEFAULT_CONTEXT_WINDOW),
        max_tokens: entry.and_then(|e| e.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS),
    }))
}

/// The models `agent_id` tries, in order. `env` reads environment variables (API keys).
/// `detected_ollama` is the first model of a local Ollama, when the caller probed one.
pub fn resolve_models(
    cfg: &HomarusConfig,
    agent_id: &str,
    env: &dyn Fn(&str) -> Option<String>,
    detected_ollama: Option<&str>,
) -> Result<Vec<ResolvedModel>, ResolveError> {
    let (at, selection) = match cfg.agents.entries.get(agent_id).and_then(|e| e.model.as_ref()) {
        Some(sel) => (format!("agents.entries.{agent_id}.model"), Some(sel)),
        None => ("agents.defaults.model".to_string(), cfg.agents.defaults.model.as_ref()),
    };
    let refs = selection.map(|s| s.refs()).unwrap_or_default();
    let mut out = Vec::new();
    for reference in refs {
        let (provider, model) = match reference.split_once('/') {
            Some((p, m)) if cfg.models.providers.contains_key(p) || BUILTINS.iter().any(|b| b.id == p) => {
                (p.to_string(), m.to_string())
            }
            Some((p, _)) if !cfg.models.providers.values().any(|pc| pc.models.iter().any(|m| m.id == reference)) => {
                return Err(ResolveError::UnknownProvider { at, reference: reference.clone(), provider: p.into() });
            }
            _ => {
                // A bare id (or an id containing '/'): the provider that lists it.
                let owner = cfg.models.providers.iter().find(|(_, p)| p.models.iter().any(|m| m.id == reference));
                match owner {
                    Some((p, _)) => (p.clone(), reference.clone()),
                    None => return Err(ResolveError::UnknownModel { at, reference: reference.clone() }),
                }
            }
        };
        if let Some(m) = build(cfg, &provider, &model, env)? {
            out.push(m);
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    // No explicit choice: the first configured model, then a provider key in the environment,
    // then a local Ollama.
    if let Some((id, p)) = cfg.models.providers.iter().find(|(_, p)| !p.models.is_empty()) {
        if let Some(m) = build(cfg, id, &p.models[0].id, env)? {
            return Ok(vec![m]);
        }
    }
    for b in BUILTINS.iter().filter(|b| !b.key_env.is_empty()) {
        if env(b.key_env).is_some_and(|k| !k.is_empty()) {
            if let Some(m) = build(cfg, b.id, b.default_model, env)? {
                return Ok(vec![m]);
            }
        }
    }
    if let Some(model) = detected_ollama {
        if let Some(m) = build(cfg, "ollama", model, env)? {
            return Ok(vec![m]);
        }
    }
    Err(ResolveError::NoModel)
}

/// Ask a local Ollama (127.0.0.1:11434) for its first model; `None` when none answers within 300 ms.
pub async fn detect_ollama(http: &reqwest::Client) -> Option<String> {
    let resp =
        tokio::time::timeout(std::time::Duration::from_millis(300), http.get("http://127.0.0.1:11434/api/tags").send())
            .await
            .ok()?
            .ok()?;
    let v: serde_json::Value =
        tokio::time::timeout(std::time::Duration::from_millis(300), resp.json()).await.ok()?.ok()?;
    v["models"][0]["name"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: serde_json::Value) -> HomarusConfig {
        serde_json::from_value(v).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn primary_and_fallbacks_from_configured_providers() {
        let c = cfg(serde_json::json!({
            "models": {"providers": {
                "local": {"baseUrl": "http://127.0.0.1:9/v1/", "apiKey": "sk", "api": "openai-completions",
                          "models": [{"id": "m1", "contextWindow": 1000, "maxTokens": 50}]},
                "anthropic": {"apiKey": "ak", "models": [{"id": "claude-x"}]}}},
            "agents": {"defaults": {"model": {"primary": "local/m1", "fallbacks": ["claude-x"]}}}
        }));
        let ms = resolve_models(&c, "main", &no_env, None).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].base_url, "http://127.0.0.1:9/v1");
        assert_eq!((ms[0].context_window, ms[0].max_tokens), (1000, 50));
        assert_eq!(ms[1].api, Api::AnthropicMessages);
        assert_eq!(ms[1].base_url, "https://api.anthropic.com");
        assert_eq!(ms[1].api_key.as_deref(), Some("ak"));
    }

    #[test]
    fn agent_entry_wins_and_errors_name_the_key() {
        let c = cfg(serde_json::json!({
            "agents": {"defaults": {"model": "openai/gpt-x"}, "entries": {"ops": {"model": "nope/model"}}}
        }));
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "sk-env".to_string());
        let main = resolve_models(&c, "main", &env, None).unwrap();
        assert_eq!(main[0].api_key.as_deref(), Some("sk-env"));
        let err = resolve_models(&c, "ops", &env, None).unwrap_err().to_string();
        assert!(err.starts_with("agents.entries.ops.model: model \"nope/model\" names provider \"nope\""), "{err}");
    }

    #[test]
    fn nothing_configured_falls_back_to_env_then_ollama_then_explains() {
        let c = HomarusConfig::default();
        let err = resolve_models(&c, "main", &no_env, None).unwrap_err();
        assert!(err.to_string().starts_with("no model configured: set OPENAI_API_KEY"), "{err}");
        let ollama = resolve_models(&c, "main", &no_env, Some("llama3.2")).unwrap();
        assert_eq!((ollama[0].provider.as_str(), ollama[0].model.as_str()), ("ollama", "llama3.2"));
        let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "ak".to_string());
        let a = resolve_models(&c, "main", &env, None).unwrap();
        assert_eq!(a[0].api, Api::AnthropicMessages);
        let bad = cfg(
            serde_json::json!({"models": {"providers": {"g": {"api": "google-generative-ai", "models": [{"id": "x"}]}}}}),
        );
        assert!(resolve_models(&bad, "main", &no_env, None).unwrap_err().to_string().contains("is not supported"));
    }
}
