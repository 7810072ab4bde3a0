//! Checkpoints: a device's statement "my chain up to `seq` ends in `hash`",
//! authenticated with its key (HMAC-SHA256) or, for the hub's own chains, with the
//! hub's Ed25519 key. Checkpoints are records beside the journal, not events.
//!
//! Message (DESIGN.md): `"caja/checkpoint/v1\n{device}\n{seq}\n{hash}"`.

use serde::{Deserialize, Serialize};

use crate::digest::{Hash256, Mac, Signature};
use crate::ids::{DeviceId, KeyId, Seq};
use crate::key::{DeviceKey, HubPublicKey, HubSigningKey};

/// Why a checkpoint does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The MAC does not match (wrong key or edited fields).
    #[error("checkpoint MAC does not verify for device {device} at seq {seq}")]
    BadMac {
        /// The device named in the checkpoint.
        device: DeviceId,
        /// The seq named in the checkpoint.
        seq: Seq,
    },
    /// The Ed25519 signature does not verify.
    #[error("hub checkpoint signature does not verify for chain {device} at seq {seq}")]
    BadSignature {
        /// The hub chain named in the checkpoint.
        device: DeviceId,
        /// The seq named in the checkpoint.
        seq: Seq,
    },
}

/// The exact bytes a checkpoint authenticates.
pub fn checkpoint_message(device: &DeviceId, seq: Seq, hash: &Hash256) -> String {
    format!("caja/checkpoint/v1\n{device}\n{seq}\n{hash}")
}

/// A register's checkpoint, authenticated with HMAC-SHA256 under its device key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The device whose chain this is.
    pub device: DeviceId,
    /// The last seq covered.
    pub seq: Seq,
    /// The hash of the event at `seq`.
    pub hash: Hash256,
    /// Which of the device's keys made the MAC.
    pub key_id: KeyId,
    /// HMAC-SHA256 of [`checkpoint_message`].
    pub mac: Mac,
}

impl Checkpoint {
    /// Makes a checkpoint of `device`'s chain at `seq`/`hash`.
    pub fn sign(key: &DeviceKey, key_id: KeyId, device: DeviceId, seq: Seq, hash: Hash256) -> Self {
        let mac = key.mac(checkpoint_message(&device, seq, &hash).as_bytes());
        Checkpoint {
            device,
            seq,
            hash,
            key_id,
            mac: Mac::from_bytes(mac),
        }
    }

    /// Verifies the MAC in constant time.
    pub fn verify(&self, key: &DeviceKey) -> Result<(), CheckpointError> {
        let msg = checkpoint_message(&self.device, self.seq, &self.hash);
        if key.verify_mac(msg.as_bytes(), &self.mac.0) {
            Ok(())
        } else {
            Err(CheckpointError::BadMac {
                device: self.device,
                seq: self.seq,
            })
        }
    }
}

/// A checkpoint of one of the hub's chains, signed with the hub's Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubCheckpoint {
    /// The store's hub chain (its device id).
    pub device: DeviceId,
    /// The last seq covered.
    pub seq: Seq,
    /// The hash of the event at `seq`.
    pub hash: Hash256,
    /// Which hub key signed.
    pub key_id: KeyId,
    /// Ed25519 signature of [`checkpoint_message`].
    pub sig: Signature,
}

impl HubCheckpoint {
    /// Signs a hub chain's checkpoint.
    pub fn sign(
        key: &HubSigningKey,
        key_id: KeyId,
        device: DeviceId,
        seq: Seq,
        hash: Hash256,
    ) -> Self {
        let sig = key.sign(checkpoint_message(&device, seq, &hash).as_bytes());
        HubCheckpoint {
            device,
            seq,
            hash,
            key_id,
            sig: Signature::from_bytes(sig),
        }
    }

    /// Verifies the signature with the hub's public key.
    pub fn verify(&self, key: &HubPublicKey) -> Result<(), CheckpointError> {
        let msg = checkpoint_message(&self.device, self.seq, &self.hash);
        if key.verify(msg.as_bytes(), &self.sig.0) {
            Ok(())
        } else {
            Err(CheckpointError::BadSignature {
                device: self.device,
                seq: self.seq,
            })
        }
    }
}
