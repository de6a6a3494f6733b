//! Internal automation hooks: `HOOK.md` folders whose handler is an executable, plus bundled native
//! hooks, fired on gateway, command and session events.
//!
//! A handler gets the event as JSON on stdin (`{type, action, sessionKey, context, timestamp,
//! messages}`) and may print `{"messages": [...]}` on stdout. Handlers of one event run one after
//! another: those listening to the family (`command`) first, then those for the exact event
//! (`command:new`), each bounded by a timeout; a failing handler is logged and the next one runs.
mod bus;
mod discover;

pub use bus::{InternalEvent, InternalHookBus, NativeHandler};
pub use discover::{
    discover_internal_hooks, select_internal_hooks, HookHandlerKind, HookSource, InternalHook, Requirements,
    INTERNAL_EVENTS,
};
