//! # caja-shared
//!
//! The domain and the protocol of Caja, with no IO: identifiers, money, canonical
//! JSON (RFC 8785), the event envelope and its kinds, hash chains, checkpoints,
//! request signing, the hybrid logical clock and RFC 9162 Merkle proofs.
//!
//! Architecture invariant: this crate reads no clock, no OS randomness, no file,
//! no socket. Time and randomness are passed in ([`clock::Clock`],
//! [`entropy::RandomSource`]), so every function here can be replayed exactly by
//! tests and by the simulation.

pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod clock;
pub mod digest;
pub mod ecf;
pub mod entropy;
pub mod escrow;
pub mod event;
pub mod fiscal;
pub mod hlc;
pub mod ids;
pub mod key;
pub mod kind;
pub mod localtime;
pub mod merkle;
pub mod money;
pub mod pin;
pub mod push;
pub mod request;
