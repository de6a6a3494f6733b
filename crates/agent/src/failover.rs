//! One model turn with retries and failover: 429/5xx/network errors are retried with exponential
//! backoff (honouring `Retry-After`), then the next model is tried. A failure after text already
//! streamed to the user is not retried (the user would see the answer twice).
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::provider::{stream_call, ModelRequest, ModelResponse, ProviderError, ResolvedModel, StreamDelta};

/// Retry and watchdog settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per model (first try included).
    pub attempts_per_model: u32,
    /// First backoff; doubles each retry.
    pub base_backoff: Duration,
    /// Longest wait, including a server's `Retry-After`.
    pub max_backoff: Duration,
    /// Silence after which a stream counts as stalled.
    pub idle_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_per_model: 3,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            idle_timeout: crate::provider::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Call the first model that answers. `on_model` hears each model as it is tried; returns the
/// response and the index of the model that gave it.
pub async fn call_with_failover(
    http: &reqwest::Client,
    models: &[ResolvedModel],
    req: &ModelRequest<'_>,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    on_model: &mut (dyn FnMut(&ResolvedModel) + Send),
    on_delta: &mut (dyn FnMut(StreamDelta) + Send),
) -> Result<(ModelResponse, usize), ProviderError> {
    let mut last_err = ProviderError::Network { provider: String::new(), message: "no model to call".into() };
    for (index, model) in models.iter().enumerate() {
        on_model(model);
        for attempt in 0..policy.attempts_per_model.max(1) {
            let mut streamed = false;
            let mut forward = |d: StreamDelta| {
                streamed = true;
                on_delta(d);
            };
            match stream_call(http, model, req, policy.idle_timeout, cancel, &mut forward).await {
                Ok(resp) => return Ok((resp, index)),
                Err(e) if streamed || matches!(e, ProviderError::Aborted | ProviderError::ContextOverflow { .. }) => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::warn!(model = %model.reference(), attempt = attempt + 1, error = %e, "model call failed");
                    let retry = e.retryable() && attempt + 1 < policy.attempts_per_model;
                    let wait = match &e {
                        ProviderError::RateLimited { retry_after: Some(d), .. } => *d,
                        _ => policy.base_backoff * 2u32.saturating_pow(attempt),
                    }
                    .min(policy.max_backoff);
                    let fails_over = e.fails_over();
                    last_err = e;
                    if retry {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => continue,
                            _ = cancel.cancelled() => return Err(ProviderError::Aborted),
                        }
                    }
                    if !fails_over {
                        return Err(last_err);
                    }
                    break;
                }
            }
        }
    }
    Err(last_err)
}
