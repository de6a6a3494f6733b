//! DM pairing codes: 8 characters, upper case, without the look-alikes `0 O 1 I`; valid one hour;
//! at most three pending per channel account. The requests and approvals live in the store.
use rand::Rng;

/// Characters a code is made of.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Code length.
pub const CODE_LEN: usize = 8;
/// How long a code is valid.
pub const CODE_TTL_MS: i64 = 60 * 60 * 1000;
/// Pending requests per channel account.
pub const MAX_PENDING: usize = 3;

/// A fresh random code.
pub fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect()
}

/// Normalise a code typed by a person (case, spaces, dashes).
pub fn normalize_code(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// The message that tells an unknown sender how to get access.
pub fn request_text(channel: &str, sender: &str, code: &str) -> String {
    format!(
        "Homarus: access not configured.\n\nYour {channel} id: {sender}\nPairing code: {code}\n\n\
         Ask the owner to approve with:\nhomarus pairing approve {channel} {code}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_avoid_look_alikes() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), CODE_LEN);
            assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']));
        }
        assert_eq!(normalize_code(" abcd-efgh "), "ABCDEFGH");
    }
}
