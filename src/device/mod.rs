//! Devices: one WhatsApp account each. This module holds the device rows and their store; the
//! supervised device actors build on it.

pub mod model;
pub mod store;

pub use model::{Device, DeviceStatus};
