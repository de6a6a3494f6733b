//! Background work: the task ledger's rules (creating records, legal transitions, retention, the
//! wire shape) and the one delivery policy every background completion goes through.
//!
//! The ledger rows live in `homarus-store`; this crate knows nothing of the gateway: the gateway
//! calls [`Ledger`] when work starts and ends and asks [`policy::route`] how to tell the requester.
pub mod ledger;
pub mod policy;

pub use ledger::{wire_task, Ledger, NewTask, LOST_RETENTION_MS, RETENTION_MS};
pub use policy::{completion_chat_type, route, CompletionRoute, DirectSend};
