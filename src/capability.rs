//! Capability URLs: the token in a machine's config and done URLs that
//! proves a request follows a boot script pxedeck handed to that machine,
//! and the 0600 files that keep pxedeck's generated secrets.
//!
//! A token is `<expiry>.<nonce>.<tag>`. The tag is HMAC-SHA256, truncated
//! to 128 bits (RFC 2104 §5 allows half the output), over what the URL may
//! do, the machine's hostname and MAC, the expiry and a nonce minted per
//! script served. It is checked in constant time. Holding a lease is not
//! enough to read a machine's configs: the address stays a second factor.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::ident::Mac;

/// Rendered scripts and configs carry these in place of a token; the HTTP
/// shell fills them in per request ([`Key::fill`]), so a cached script
/// still hands every boot a token of its own. URL-safe, so a template
/// filter such as `urlencode` leaves them intact.
pub const CONFIG_SLOT: &str = "pxedeck-capability-config";
pub const DONE_SLOT: &str = "pxedeck-capability-done";
/// What both slots start with, for finding them in one pass.
const SLOT_PREFIX: &str = "pxedeck-capability-";

/// Bytes of the tag kept in the token (128 bits).
const TAG_BYTES: usize = 16;
/// Separates the fields of the signed message (none can contain it).
const DOMAIN: &[u8] = b"pxedeck capability v1";

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Read the machine's installer configs.
    Config,
    /// Call the install-done callback.
    Done,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Config => b"config",
            Purpose::Done => b"done",
        }
    }
}

/// One boot's grant: when its tokens stop working and the nonce that sets
/// them apart from every other boot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// Unix seconds.
    pub expires: u64,
    pub nonce: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the URL carries no capability token")]
    Missing,
    #[error("the capability token is malformed")]
    Malformed,
    #[error("the capability token has expired")]
    Expired,
    #[error("the capability token is not valid for this machine")]
    Forged,
}

/// The per-instance secret that signs tokens.
pub struct Key {
    secret: [u8; 32],
    /// Nonces: unique within this process, randomly seeded so they do not
    /// repeat across restarts either.
    next_nonce: AtomicU64,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn from_bytes(secret: [u8; 32]) -> Key {
        let seed = random_bytes::<8>().map_or(0, u64::from_le_bytes);
        Key {
            secret,
            next_nonce: AtomicU64::new(seed),
        }
    }

    /// A fresh random key (tests, and servers whose key file is new).
    pub fn generate() -> std::io::Result<Key> {
        Ok(Key::from_bytes(random_bytes()?))
    }

    /// The key kept in `path` (hex), created with mode 0600 on first use so
    /// a restart does not break installs in flight.
    pub fn load_or_create(path: &Path) -> std::io::Result<Key> {
        let (text, _) = read_or_create_secret(path)?;
        let bytes = from_hex(&text)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| invalid(path, "is not 64 hex digits"))?;
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&bytes);
        Ok(Key::from_bytes(secret))
    }

    /// A new boot's grant, valid `lifetime_secs` from `now_secs`.
    pub fn mint(&self, now_secs: u64, lifetime_secs: u64) -> Boot {
        Boot {
            expires: now_secs.saturating_add(lifetime_secs),
            nonce: self.next_nonce.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn mac(
        &self,
        purpose: Purpose,
        hostname: &str,
        mac: Option<&Mac>,
        boot: &Boot,
    ) -> Hmac<Sha256> {
        let mut h = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key size");
        h.update(DOMAIN);
        h.update(&[0]);
        h.update(purpose.label());
        h.update(&[0]);
        // Length-prefixed: a hostname cannot run into the fields after it.
        h.update(&(hostname.len() as u64).to_be_bytes());
        h.update(hostname.as_bytes());
        h.update(&mac.map_or([0; 6], |m| m.0));
        h.update(&boot.expires.to_be_bytes());
        h.update(&boot.nonce.to_be_bytes());
        h
    }

    /// The token for one purpose of one machine in one boot.
    pub fn token(
        &self,
        purpose: Purpose,
        hostname: &str,
        mac: Option<&Mac>,
        boot: &Boot,
    ) -> String {
        let tag = self
            .mac(purpose, hostname, mac, boot)
            .finalize()
            .into_bytes();
        let mut token = String::with_capacity(16 + 1 + 16 + 1 + 2 * TAG_BYTES);
        let _ = write!(token, "{:x}.{:016x}.", boot.expires, boot.nonce);
        push_hex(&mut token, &tag[..TAG_BYTES]);
        token
    }

    /// Checks a token (constant-time on the tag); the boot it was minted
    /// for when it is good.
    pub fn verify(
        &self,
        purpose: Purpose,
        hostname: &str,
        mac: Option<&Mac>,
        token: &str,
        now_secs: u64,
    ) -> Result<Boot, Refused> {
        let mut parts = token.split('.');
        let (Some(expires), Some(nonce), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed);
        };
        let hex_field = |s: &str, max: usize| {
            (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        let (Some(expires), Some(nonce), Some(tag)) = (
            hex_field(expires, 16),
            hex_field(nonce, 16),
            from_hex(tag).filter(|t| t.len() == TAG_BYTES),
        ) else {
            return Err(Refused::Malformed);
        };
        let boot = Boot { expires, nonce };
        // The tag first: an expired token's expiry is only believed once it
        // is known to be ours.
        self.mac(purpose, hostname, mac, &boot)
            .verify_truncated_left(&tag)
            .map_err(|_| Refused::Forged)?;
        if now_secs >= expires {
            return Err(Refused::Expired);
        }
        Ok(boot)
    }

    /// `text` with the slots of a machine's URLs filled in for one boot,
    /// in one pass: every entry script goes through here, per request.
    pub fn fill(&self, text: &str, hostname: &str, mac: Option<&Mac>, boot: &Boot) -> String {
        let mut out = String::with_capacity(text.len() + 64);
        let (mut config, mut done) = (None, None);
        let mut rest = text;
        while let Some(at) = rest.find(SLOT_PREFIX) {
            let (before, slot) = rest.split_at(at);
            out.push_str(before);
            let (token, len) = if slot.starts_with(CONFIG_SLOT) {
                let t =
                    config.get_or_insert_with(|| self.token(Purpose::Config, hostname, mac, boot));
                (t.as_str(), CONFIG_SLOT.len())
            } else if slot.starts_with(DONE_SLOT) {
                let t = done.get_or_insert_with(|| self.token(Purpose::Done, hostname, mac, boot));
                (t.as_str(), DONE_SLOT.len())
            } else {
                // The common prefix alone: not a slot, kept as it is.
                (SLOT_PREFIX, SLOT_PREFIX.len())
            };
            out.push_str(token);
            rest = &slot[len..];
        }
        out.push_str(rest);
        out
    }
}

fn invalid(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} {what}", path.display()),
    )
}

/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// The secret in `path`, or a new random one (64 hex digits) written there
/// with mode 0600; true when it was created. A file that others may read
/// is refused rather than trusted: its secret may already be known.
pub fn read_or_create_secret(path: &Path) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(invalid(
                    path,
                    &format!(
                        "may be read by others (mode {:o}): chmod 600 it, or delete it for a new one",
                        mode & 0o777
                    ),
                ));
            }
            let secret = text.trim();
            if secret.is_empty() {
                return Err(invalid(path, "is empty: delete it for a new one"));
            }
            Ok((secret.to_string(), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let secret = to_hex(&random_bytes::<32>()?);
            // tempfile creates 0600; the link makes it appear whole or not
            // at all, and a second instance racing us keeps the first one.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            writeln!(tmp, "{secret}")?;
            tmp.as_file().sync_all()?;
            match tmp.persist_noclobber(path) {
                Ok(_) => Ok((secret, true)),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_create_secret(path)
                }
                Err(e) => Err(e.error),
            }
        }
        Err(e) => Err(e),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// By table, not `{:02x}` per byte: a token per config and done URL of
/// every entry script served.
fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.extend(crate::ident::hex_digits(b).map(char::from));
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x52, 0x54, 0, 0xd0, 0, 1]);

    fn key() -> Key {
        Key::from_bytes([7; 32])
    }

    #[test]
    fn fill_puts_each_token_in_every_slot_of_its_kind_and_nothing_else() {
        let k = key();
        let boot = k.mint(1_000, 60);
        assert!(CONFIG_SLOT.starts_with(SLOT_PREFIX) && DONE_SLOT.starts_with(SLOT_PREFIX));
        let config = k.token(Purpose::Config, "dev-01", Some(&MAC), &boot);
        let done = k.token(Purpose::Done, "dev-01", Some(&MAC), &boot);
        for text in [
            "no slots at all",
            "",
            "c=pxedeck-capability-config d=pxedeck-capability-done",
            "pxedeck-capability-done pxedeck-capability-config pxedeck-capability-done",
            "pxedeck-capability-other pxedeck-capability-",
            "pxedeck-capability-configpxedeck-capability-done\n",
        ] {
            let want = text.replace(CONFIG_SLOT, &config).replace(DONE_SLOT, &done);
            assert_eq!(k.fill(text, "dev-01", Some(&MAC), &boot), want, "{text:?}");
        }
        assert_eq!(to_hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
    }

    #[test]
    fn a_token_verifies_for_its_machine_purpose_and_boot_only() {
        let k = key();
        let boot = k.mint(1_000, 600);
        let t = k.token(Purpose::Config, "dev-01", Some(&MAC), &boot);
        assert_eq!(
            k.verify(Purpose::Config, "dev-01", Some(&MAC), &t, 1_001),
            Ok(boot)
        );
        let refused = |purpose, host, mac: Option<&Mac>, token: &str, now| {
            k.verify(purpose, host, mac, token, now).unwrap_err()
        };
        assert_eq!(
            refused(Purpose::Done, "dev-01", Some(&MAC), &t, 1_001),
            Refused::Forged
        );
        assert_eq!(
            refused(Purpose::Config, "dev-02", Some(&MAC), &t, 1_001),
            Refused::Forged
        );
        let other = Mac([0x52, 0x54, 0, 0xd0, 0, 2]);
        assert_eq!(
            refused(Purpose::Config, "dev-01", Some(&other), &t, 1_001),
            Refused::Forged
        );
        assert_eq!(
            refused(Purpose::Config, "dev-01", Some(&MAC), &t, 1_600),
            Refused::Expired
        );
        // Another instance's key signs differently.
        let stranger = Key::from_bytes([8; 32]);
        assert_eq!(
            stranger.verify(Purpose::Config, "dev-01", Some(&MAC), &t, 1_001),
            Err(Refused::Forged)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let k = key();
        let boot = k.mint(1_000, 600);
        let t = k.token(Purpose::Config, "dev-01", Some(&MAC), &boot);
        let (expiry, rest) = t.split_once('.').unwrap();
        // A later expiry with the old tag.
        let later = format!(
            "{:x}.{rest}",
            u64::from_str_radix(expiry, 16).unwrap() + 3600
        );
        let flipped = {
            let mut b = t.clone().into_bytes();
            let last = b.len() - 1;
            b[last] = if b[last] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        };
        for bad in [later.as_str(), flipped.as_str()] {
            assert_eq!(
                k.verify(Purpose::Config, "dev-01", Some(&MAC), bad, 1_001),
                Err(Refused::Forged),
                "{bad}"
            );
        }
        for bad in [
            "",
            "x",
            "1.2",
            "1.2.3.4",
            "zz.00.00",
            &format!("{t}0"),
            &t[..t.len() - 2],
        ] {
            assert_eq!(
                k.verify(Purpose::Config, "dev-01", Some(&MAC), bad, 1_001),
                Err(Refused::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_boot_gets_its_own_token() {
        let k = key();
        let (a, b) = (k.mint(1_000, 600), k.mint(1_000, 600));
        assert_ne!(a.nonce, b.nonce);
        let text = format!(
            "s=http://h/config/dev-01/{CONFIG_SLOT}/ done=http://h/done/dev-01/{DONE_SLOT}"
        );
        let (fa, fb) = (
            k.fill(&text, "dev-01", Some(&MAC), &a),
            k.fill(&text, "dev-01", Some(&MAC), &b),
        );
        assert_ne!(fa, fb);
        assert!(!fa.contains(CONFIG_SLOT) && !fa.contains(DONE_SLOT), "{fa}");
        assert!(fa.contains(&k.token(Purpose::Done, "dev-01", Some(&MAC), &a)));
    }

    #[test]
    fn secret_files_are_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/capability.key");
        let (first, created) = read_or_create_secret(&path).unwrap();
        assert!(created);
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_or_create_secret(&path).unwrap(), (first, false));
        Key::load_or_create(&path).unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_or_create_secret(&path).unwrap_err().to_string();
        assert!(e.contains("may be read by others (mode 644)"), "{e}");
    }
}
