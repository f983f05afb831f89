//! The simulated WhatsApp network (being built).
