//! RPC methods: the dispatcher (unknown-method and scope checks) and one module per family.
mod channels;
mod chat;
mod config;
mod cron;
mod devices;
mod info;
mod params_schema;
pub(crate) mod sessions;
mod tasks;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use homarus_protocol::{scopes_satisfy, ErrorCode, ErrorShape, ScopeCheck};

use crate::state::{GatewayState, IMPLEMENTED_METHODS};

pub use devices::device_json;
pub use info::{health_payload, presence_list};

/// Who is calling.
#[derive(Clone, Copy)]
pub struct CallContext<'a> {
    /// Granted scopes.
    pub scopes: &'a [String],
    /// Role.
    pub role: &'a str,
    /// The request being answered, for methods that answer early or twice (`chat.send`, `agent`).
    pub responder: Option<&'a Responder>,
}

/// Answers one request. A method that starts background work sends its acknowledgement itself
/// (before any event of that work can be sent), and `agent` sends a second, final response later.
pub struct Responder {
    /// The request id.
    pub id: String,
    /// The connection's queue.
    pub outbound: crate::outbound::Outbound,
    sent: std::sync::atomic::AtomicBool,
}

impl Responder {
    /// A responder for request `id`.
    pub fn new(id: &str, outbound: crate::outbound::Outbound) -> Self {
        Self { id: id.to_string(), outbound, sent: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Send the success response now.
    pub fn send_now(&self, payload: &Value) {
        self.sent.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.outbound.send_text(homarus_protocol::ResponseFrame::ok_json(&self.id, payload));
    }

    /// Whether the response went out already.
    pub fn already_sent(&self) -> bool {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Methods with side effects whose params carry an `idempotencyKey`: a repeat within the TTL gets the
/// first response replayed instead of running again. (The methods of this list arrive with the agent
/// and channel capabilities; the cache is keyed per method so keys never collide across methods.)
const IDEMPOTENT_METHODS: &[&str] = &["agent", "chat.send", "chat.inject", "send", "poll", "sessions.send"];

/// Run `method` for a client. Checks, in order: the method exists, the role, the scope.
pub async fn dispatch(
    state: &Arc<GatewayState>,
    ctx: &CallContext<'_>,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, ErrorShape> {
    if !IMPLEMENTED_METHODS.contains(&method) {
        return Err(ErrorShape::invalid(format!("unknown method: {method}")));
    }
    if params.is_some_and(|p| !p.is_object() && !p.is_null()) {
        return Err(ErrorShape::invalid("invalid params: at /: must be object"));
    }
    if ctx.role != "operator" {
        return Err(ErrorShape::new(ErrorCode::Forbidden, format!("role {} may not call {method}", ctx.role)));
    }
    // `health` answers any authenticated operator, even one granted no scopes (as OpenClaw does for probes).
    if method != "health" {
        if let ScopeCheck::Missing(scope) = scopes_satisfy(method, ctx.scopes) {
            return Err(ErrorShape::new(ErrorCode::Forbidden, format!("missing scope: {scope}"))
                .with_details(json!({"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]})));
        }
    }
    let dedupe_key = IDEMPOTENT_METHODS
        .contains(&method)
        .then(|| params.and_then(|p| p.get("idempotencyKey")).and_then(Value::as_str))
        .flatten()
        .map(|k| format!("{method}:{k}"));
    if let Some(key) = &dedupe_key {
        if let Some(cached) = state.dedupe.get(key) {
            return cached;
        }
    }
    let outcome = run(state, ctx, method, params).await;
    if let Some(key) = dedupe_key {
        state.dedupe.put(key, outcome.clone());
    }
    outcome
}

async fn run(
    state: &Arc<GatewayState>,
    ctx: &CallContext<'_>,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, ErrorShape> {
    match method {
        "chat.send" => chat::send(state, ctx, params).await,
        "chat.abort" => chat::abort(state, params),
        "chat.inject" => chat::inject(state, params),
        "agent" => chat::agent(state, ctx, params),
        "agent.wait" => chat::wait(state, params).await,
        "agents.list" => chat::agents_list(state),
        "commands.list" => Ok(chat::commands_list()),
        "tasks.list" => tasks::list(state, params),
        "tasks.get" => tasks::get(state, params),
        "tasks.cancel" => tasks::cancel(state, params),
        "wake" => tasks::wake(state, params),
        "channels.status" => Ok(channels::status(state)),
        "channels.pairing.list" => channels::pairing_list(state, params),
        "channels.pairing.approve" => channels::pairing_approve(state, params).await,
        "channels.pairing.dismiss" => channels::pairing_dismiss(state, params),
        "cron.list" => cron::list(state, params),
        "cron.get" => cron::get(state, params),
        "cron.status" => Ok(cron::status(state)),
        "cron.add" => cron::add(state, params),
        "cron.update" => cron::update(state, params),
        "cron.remove" => cron::remove(state, params),
        "cron.run" => cron::run(state, params),
        "cron.runs" => cron::runs(state, params),
        "last-heartbeat" => Ok(cron::last_heartbeat(state)),
        "set-heartbeats" => cron::set_heartbeats(state, params),
        "sessions.subscribe" => Ok(json!({"ok": true})),
        "health" => Ok(info::health(state)),
        "status" => Ok(info::status(state)),
        "system-presence" => Ok(Value::Array(presence_list(state))),
        "logs.tail" => crate::logs::tail(&state.log_file, parse(params)?),
        "config.get" => config::get(state),
        "config.schema" => {
            let _: EmptyParams = parse(params)?;
            Ok(config::schema())
        }
        "config.set" | "config.apply" => config::apply(state, parse(params)?).await,
        "config.patch" => config::patch(state, parse(params)?).await,
        "device.pair.list" => devices::list(state),
        "device.pair.approve" => devices::approve(state, parse(params)?),
        "device.pair.reject" => devices::reject(state, parse(params)?),
        "device.pair.remove" => devices::remove(state, parse(params)?),
        "sessions.list" => sessions::list(state, params),
        "sessions.describe" => sessions::describe(state, params),
        "sessions.create" => sessions::create(state, params),
        "sessions.patch" => sessions::patch(state, params),
        "sessions.reset" => sessions::reset(state, params).await,
        "sessions.delete" => sessions::delete(state, params),
        "chat.history" => sessions::history(state, params),
        other => Err(ErrorShape::invalid(format!("unknown method: {other}"))),
    }
}

/// `{}` with no fields allowed.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyParams {}

/// Parse params strictly; absent or `null` params mean `{}`. Errors name the field path.
pub fn parse<T: DeserializeOwned>(params: Option<&Value>) -> Result<T, ErrorShape> {
    let value = match params {
        None | Some(Value::Null) => json!({}),
        Some(v) => v.clone(),
    };
    if !value.is_object() {
        return Err(ErrorShape::invalid("invalid params: at /: must be object"));
    }
    homarus_protocol::from_value_with_path(value).map_err(|e| ErrorShape::invalid(format!("invalid params: {e}")))
}

/// Map a store failure to an `UNAVAILABLE` error, logging the cause.
pub fn store_error(e: homarus_store::StoreError) -> ErrorShape {
    tracing::error!(error = %e, "state database error");
    ErrorShape::unavailable("state database unavailable; retry")
}
