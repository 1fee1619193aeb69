//! TLS for the relay (`wss://`, feature `relay`) and for devices connecting to one: rustls with
//! the ring provider. Certificates and keys come as PEM; devices trust the Mozilla roots built
//! in plus, optionally, one extra certificate (a clinic's own CA, or a test's self-signed one).

#[cfg(feature = "relay")]
use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
#[cfg(feature = "relay")]
use rustls::pki_types::PrivateKeyDer;
#[cfg(feature = "relay")]
use rustls::server::{ClientHello, ResolvesServerCert};
#[cfg(feature = "relay")]
use rustls::sign::CertifiedKey;
#[cfg(feature = "relay")]
use rustls::ServerConfig;
use rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::Connector;

use super::error::SyncError;

#[cfg(feature = "relay")]
/// The relay's certificate chain and private key, both PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_chain_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
}

#[cfg(feature = "relay")]
impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("TlsIdentity")
            .field(
                "cert_chain_pem",
                &format_args!("{} bytes", self.cert_chain_pem.len()),
            )
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, SyncError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| SyncError::Tls(format!("{what}: {error}")))?;
    if certs.is_empty() {
        return Err(SyncError::Tls(format!("{what}: no PEM certificate found")));
    }
    Ok(certs)
}

#[cfg(feature = "relay")]
/// The relay's certificate and key, replaceable while it serves (`SIGHUP`, see
/// `docs/operations.md`): handshakes after a [`CertificateSlot::replace`] present the new
/// certificate, and connections already open keep theirs.
#[derive(Clone)]
pub struct CertificateSlot(Arc<parking_lot::RwLock<Arc<CertifiedKey>>>);

#[cfg(feature = "relay")]
impl CertificateSlot {
    /// Checks `identity` (the key must match the certificate) and puts it in place.
    pub fn replace(&self, identity: &TlsIdentity) -> Result<(), SyncError> {
        *self.0.write() = certified_key(identity)?;
        Ok(())
    }
}

#[cfg(feature = "relay")]
impl fmt::Debug for CertificateSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateSlot")
    }
}

#[cfg(feature = "relay")]
impl ResolvesServerCert for CertificateSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read()))
    }
}

#[cfg(feature = "relay")]
fn certified_key(identity: &TlsIdentity) -> Result<Arc<CertifiedKey>, SyncError> {
    let chain = certificates(&identity.cert_chain_pem, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem)
        .map_err(|_| SyncError::Tls("private key: no PEM private key found".into()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|error| SyncError::Tls(format!("certificate and key: {error}")))?;
    Ok(Arc::new(certified))
}

#[cfg(feature = "relay")]
/// The relay's TLS settings with a certificate that can be replaced while it serves.
pub(crate) fn reloadable_server_config(
    identity: &TlsIdentity,
) -> Result<(Arc<ServerConfig>, CertificateSlot), SyncError> {
    let slot = CertificateSlot(Arc::new(parking_lot::RwLock::new(certified_key(identity)?)));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| SyncError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(slot.clone()));
    Ok((Arc::new(config), slot))
}

/// A `wss://` connector trusting the built-in roots and `extra_root_pem`.
pub(crate) fn client_connector(extra_root_pem: Option<&[u8]>) -> Result<Connector, SyncError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_root_pem {
        for cert in certificates(pem, "extra root certificate")? {
            roots
                .add(cert)
                .map_err(|error| SyncError::Tls(format!("extra root certificate: {error}")))?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| SyncError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}
