//! TLS on the proxy listener. The certificate is served from a swappable slot, so a hot reload
//! that sees new certificate or key files replaces it for new handshakes without a restart;
//! optional client-certificate verification (mutual TLS) against a CA bundle.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    ClientCertVerifier, ClientHello, CryptoProvider, ResolvesServerCert, RootCertStore,
    WebPkiClientVerifier,
};

/// Whether a client certificate is asked for and required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients must present a certificate signed by the client CA.
    Required,
    /// A certificate is asked for and verified when given; clients without one are let in.
    Optional,
}

/// File locations of the listener's TLS material (what a restart would re-read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// PEM bundle of CAs that sign client certificates, for mutual TLS.
    pub client_ca: Option<String>,
    /// How client certificates are treated when `client_ca` is set.
    pub client_auth: ClientAuth,
}

/// The listener's TLS material, loaded and checked.
#[derive(Clone)]
pub struct ListenerTls {
    /// Where it came from.
    pub files: TlsFiles,
    /// Certificate chain and signing key.
    pub certified: Arc<CertifiedKey>,
    /// Client-certificate verifier, when `client_ca` is set.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material never appears in debug output.
        f.debug_struct("ListenerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Why TLS material could not be loaded; `field` names the offending key of the TLS table.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsLoadError {
    /// `cert`, `key` or `client_ca`.
    pub field: &'static str,
    /// What went wrong.
    pub message: String,
}

fn load_error(field: &'static str, message: impl Into<String>) -> TlsLoadError {
    TlsLoadError {
        field,
        message: message.into(),
    }
}

fn crypto_provider() -> Result<Arc<CryptoProvider>, TlsLoadError> {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .ok_or_else(|| load_error("cert", "no TLS crypto provider is installed"))
}

fn readable(field: &'static str, path: &str) -> Result<(), TlsLoadError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| load_error(field, format!("cannot read `{path}`: {e}")))
}

impl ListenerTls {
    /// Loads and checks the files: the key must match the certificate, the CA bundle must hold
    /// at least one certificate.
    pub fn load(files: TlsFiles) -> Result<Self, TlsLoadError> {
        readable("cert", &files.cert)?;
        readable("key", &files.key)?;
        let provider = crypto_provider()?;
        let (chain, key) = pingora::tls::load_certs_and_key_files(&files.cert, &files.key)
            .map_err(|e| load_error("cert", format!("cannot parse the PEM files: {e}")))?
            .ok_or_else(|| {
                load_error(
                    "cert",
                    format!(
                        "no certificate in `{}` or no private key in `{}`",
                        files.cert, files.key
                    ),
                )
            })?;
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| load_error("key", format!("unusable certificate and key: {e}")))?;
        let client_verifier = match &files.client_ca {
            None => None,
            Some(path) => Some(client_verifier(path, files.client_auth, &provider)?),
        };
        Ok(Self {
            files,
            certified: Arc::new(certified),
            client_verifier,
        })
    }
}

fn client_verifier(
    path: &str,
    auth: ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsLoadError> {
    readable("client_ca", path)?;
    let mut roots = RootCertStore::empty();
    pingora::tls::load_ca_file_into_store(path, &mut roots)
        .map_err(|e| load_error("client_ca", format!("cannot load `{path}`: {e}")))?;
    if roots.is_empty() {
        return Err(load_error(
            "client_ca",
            format!("`{path}` holds no certificate"),
        ));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    builder
        .build()
        .map_err(|e| load_error("client_ca", format!("cannot verify with `{path}`: {e}")))
}

/// The certificate served to new handshakes; a reload stores a new one.
#[derive(Debug)]
pub struct CertSlot(ArcSwap<CertifiedKey>);

impl CertSlot {
    /// A slot serving `certified`.
    pub fn new(certified: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self(ArcSwap::new(certified)))
    }

    /// Serves `certified` from the next handshake on.
    pub fn store(&self, certified: Arc<CertifiedKey>) {
        self.0.store(certified);
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Pingora listener settings for `tls`, serving the certificate from `slot`.
pub fn listener_settings(
    tls: &ListenerTls,
    slot: Arc<CertSlot>,
) -> Result<TlsSettings, TlsLoadError> {
    // Paths are unused once a resolver is set.
    let mut settings =
        TlsSettings::intermediate("", "").map_err(|e| load_error("cert", e.to_string()))?;
    settings.set_cert_resolver(slot);
    if let Some(verifier) = &tls.client_verifier {
        settings.set_client_cert_verifier(verifier.clone());
    }
    Ok(settings)
}
