//! The bridge layer: the websocket endpoint bridges connect to, one task
//! per connection, the presence of every printer, and the commands in
//! flight (PROTOCOL §1, §5, §6).

pub mod hub;
pub mod presence;
pub mod session;
pub mod stats;
pub mod upgrade;

pub use hub::{CommandFate, Connection, Dispatched, Hub, HubConfig, Route, SendError};
pub use presence::Change;
