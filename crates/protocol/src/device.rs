//! Device identity: Ed25519 keys, the v2/v3 signed payloads, and their verification.
//!
//! `device.id` is the hex SHA-256 of the raw 32-byte public key; the key and the signature travel as
//! base64url without padding. The signed text is
//! `v2|id|clientId|clientMode|role|scopesCSV|signedAtMs|token|nonce` or the v3 form that appends
//! `|platform|deviceFamily` (trimmed, ASCII-lowercased).
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::connect::ConnectParams;

/// Which payload format a signature verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `v2|...`
    V2,
    /// `v3|...|platform|deviceFamily`
    V3,
}

/// Why a device identity was refused. `code()` gives the protocol detail code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceAuthError {
    /// The public key is not a valid base64url Ed25519 key.
    #[error("device public key is invalid")]
    PublicKeyInvalid,
    /// `device.id` does not match the key.
    #[error("device id does not match its public key")]
    DeviceIdMismatch,
    /// `device.nonce` is not the challenge nonce.
    #[error("device nonce does not match the connect challenge")]
    NonceMismatch,
    /// `signedAt` is too far from now.
    #[error("device signature expired (signedAt too far from server time)")]
    SignatureExpired,
    /// Neither the v2 nor the v3 payload verifies.
    #[error("device signature invalid")]
    SignatureInvalid,
}

impl DeviceAuthError {
    /// The `details.code` OpenClaw uses for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PublicKeyInvalid => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            Self::DeviceIdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            Self::NonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
            Self::SignatureExpired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
            Self::SignatureInvalid => "DEVICE_AUTH_SIGNATURE_INVALID",
        }
    }

    /// The short reason OpenClaw reports.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PublicKeyInvalid => "device-public-key",
            Self::DeviceIdMismatch => "device-id-mismatch",
            Self::NonceMismatch => "device-nonce-mismatch",
            Self::SignatureExpired => "device-signature-stale",
            Self::SignatureInvalid => "device-signature",
        }
    }
}

fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok().or_else(|| URL_SAFE.decode(s).ok())
}

/// Hex SHA-256 of a raw public key: the device id.
pub fn device_id_for_public_key(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn normalize_meta(s: Option<&str>) -> String {
    s.unwrap_or("").trim().to_ascii_lowercase()
}

/// Build the text a client signs, for the given version.
pub fn signed_payload(p: &ConnectParams, version: SignatureVersion) -> Option<String> {
    let d = p.device.as_ref()?;
    let scopes = p.scopes.as_deref().unwrap_or(&[]).join(",");
    let base = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}",
        match version {
            SignatureVersion::V2 => "v2",
            SignatureVersion::V3 => "v3",
        },
        d.id,
        p.client.id,
        p.client.mode,
        p.role(),
        scopes,
        d.signed_at,
        p.signed_token(),
        d.nonce
    );
    Some(match version {
        SignatureVersion::V2 => base,
        SignatureVersion::V3 => format!(
            "{base}|{}|{}",
            normalize_meta(Some(&p.client.platform)),
            normalize_meta(p.client.device_family.as_deref())
        ),
    })
}

/// Verify the device identity in `p` against the challenge `nonce` at server time `now_ms`.
/// Returns the version that verified and the raw public key.
pub fn verify_device_signature(
    p: &ConnectParams,
    nonce: &str,
    now_ms: i64,
    max_skew_ms: i64,
) -> Result<(SignatureVersion, Vec<u8>), DeviceAuthError> {
    let Some(d) = p.device.as_ref() else { return Err(DeviceAuthError::SignatureInvalid) };
    let raw = decode_b64url(&d.public_key).ok_or(DeviceAuthError::PublicKeyInvalid)?;
    let key_bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| DeviceAuthError::PublicKeyInvalid)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| DeviceAuthError::PublicKeyInvalid)?;
    if device_id_for_public_key(&raw) != d.id {
        return Err(DeviceAuthError::DeviceIdMismatch);
    }
    if d.nonce != nonce {
        return Err(DeviceAuthError::NonceMismatch);
    }
    let signed_at = i64::try_from(d.signed_at).unwrap_or(i64::MAX);
    if (now_ms - signed_at).abs() > max_skew_ms {
        return Err(DeviceAuthError::SignatureExpired);
    }
    let sig_bytes = decode_b64url(&d.signature).ok_or(DeviceAuthError::SignatureInvalid)?;
    let sig_arr: [u8; 64] = sig_bytes.as_slice().try_into().map_err(|_| DeviceAuthError::SignatureInvalid)?;
    let sig = Signature::from_bytes(&sig_arr);
    for version in [SignatureVersion::V3, SignatureVersion::V2] {
        if let Some(text) = signed_payload(p, version) {
            if key.verify_strict(text.as_bytes(), &sig).is_ok() {
                return Ok((version, raw));
            }
        }
    }
    Err(DeviceAuthError::SignatureInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_connect_params;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    /// Build a signed connect like the real TUI (v3) or Control UI (v2) would.
    fn signed(version: SignatureVersion, nonce: &str, signed_at: u64) -> ConnectParams {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let raw = key.verifying_key().to_bytes();
        let id = device_id_for_public_key(&raw);
        let mut p = parse_connect_params(Some(&json!({
            "minProtocol":4,"maxProtocol":4,
            "client":{"id":"openclaw-tui","version":"1","platform":" Linux ","deviceFamily":"Linux","mode":"ui"},
            "auth":{"token":"tok"},"role":"operator","scopes":["operator.admin","operator.read"],
            "device":{"id":id,"publicKey":URL_SAFE_NO_PAD.encode(raw),"signature":"x","signedAt":signed_at,"nonce":nonce}
        })))
        .unwrap();
        let text = signed_payload(&p, version).unwrap();
        let sig = key.sign(text.as_bytes());
        p.device.as_mut().unwrap().signature = URL_SAFE_NO_PAD.encode(sig.to_bytes());
        p
    }

    #[test]
    fn v3_payload_matches_the_documented_layout() {
        let p = signed(SignatureVersion::V3, "n1", 1000);
        let text = signed_payload(&p, SignatureVersion::V3).unwrap();
        let id = &p.device.as_ref().unwrap().id;
        assert_eq!(
            text,
            format!("v3|{id}|openclaw-tui|ui|operator|operator.admin,operator.read|1000|tok|n1|linux|linux")
        );
    }

    #[test]
    fn verifies_v2_and_v3() {
        for v in [SignatureVersion::V2, SignatureVersion::V3] {
            let p = signed(v, "n1", 1000);
            assert_eq!(verify_device_signature(&p, "n1", 2000, 600_000).unwrap().0, v);
        }
    }

    #[test]
    fn refuses_tampering_wrong_nonce_stale_and_wrong_id() {
        let mut p = signed(SignatureVersion::V3, "n1", 1000);
        p.scopes = Some(vec!["operator.admin".into()]);
        assert_eq!(verify_device_signature(&p, "n1", 1000, 600_000).unwrap_err(), DeviceAuthError::SignatureInvalid);
        let p = signed(SignatureVersion::V3, "n1", 1000);
        assert_eq!(verify_device_signature(&p, "n2", 1000, 600_000).unwrap_err(), DeviceAuthError::NonceMismatch);
        assert_eq!(
            verify_device_signature(&p, "n1", 10_000_000, 600_000).unwrap_err(),
            DeviceAuthError::SignatureExpired
        );
        let mut p = signed(SignatureVersion::V3, "n1", 1000);
        p.device.as_mut().unwrap().id = "00".repeat(32);
        assert_eq!(verify_device_signature(&p, "n1", 1000, 600_000).unwrap_err(), DeviceAuthError::DeviceIdMismatch);
        p.device.as_mut().unwrap().public_key = "!!".into();
        assert_eq!(verify_device_signature(&p, "n1", 1000, 600_000).unwrap_err(), DeviceAuthError::PublicKeyInvalid);
    }
}
