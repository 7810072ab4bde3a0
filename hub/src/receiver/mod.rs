//! The hub as DGII electronic receiver, pure: the seed → signed seed → token
//! exchange of URL Autenticación ([`auth`]), the reading and checking of an
//! e-CF a supplier sends to URL Recepción and of an ACECF a buyer sends to
//! URL Aprobación Comercial, and the ARECF / ACECF the hub signs in answer
//! ([`documents`]).
//!
//! Source: DGII "Descripción técnica de facturación electrónica" v1.6,
//! section "Comunicación Emisor-Receptor" (the three services every
//! electronic issuer exposes, at `/fe/autenticacion/api/semilla`,
//! `/fe/autenticacion/api/validacioncertificado`, `/fe/recepcion/api/ecf`,
//! `/fe/aprobacioncomercial/api/ecf`), and the schemas `ARECF.xsd`,
//! `ACECF.xsd`, `Semilla.xsd` (`../shared/dgii/xsd`). Each module names what
//! it guessed.
//!
//! Invariant: no IO, no clock, no randomness of its own — times, nonces,
//! keys and the trusted CAs are passed in; nothing here knows SQL or HTTP.

pub mod auth;
pub mod documents;
