//! TLS for QUIC links without certificate authorities: each node presents a self-signed
//! certificate whose key is its Ed25519 identity, and each end accepts exactly the certificate
//! that carries the key of the PeerId it set out to link with. TLS 1.3 only; its handshake
//! signature proves the peer holds that key. Validity dates are not checked: the identity key
//! is the credential, and it does not expire.

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use node_core::identity::Keypair;
use node_core::PeerId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, PeerIncompatible, SignatureScheme};
use std::sync::Arc;

/// The ALPN protocol of a Weft link.
pub const ALPN: &[u8] = b"weft/1";
/// The name in the certificate and the one a client asks for (never checked: the key is).
pub const SERVER_NAME: &str = "weft";

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The identity key could not be encoded.
    #[error("cannot encode the identity key: {0}")]
    Key(String),
    /// The certificate could not be made.
    #[error("cannot make the TLS certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// This node's certificate and key, made once at start.
pub struct TlsIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl TlsIdentity {
    /// A self-signed certificate for `identity`'s key.
    pub fn new(identity: &Keypair) -> Result<Self, TlsSetupError> {
        let signing = ed25519_dalek::SigningKey::from_bytes(&identity.secret());
        let pkcs8 = signing.to_pkcs8_der().map_err(|e| TlsSetupError::Key(e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)?;
        let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])?.self_signed(&key_pair)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(TlsIdentity { cert: cert.der().clone(), key, provider })
    }

    /// A client configuration that accepts only `peer`'s certificate and presents ours.
    pub fn client(&self, peer: PeerId) -> Result<rustls::ClientConfig, TlsSetupError> {
        let verifier = Arc::new(ExpectPeer::new(peer, self.provider.clone()));
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// A server configuration that requires `peer`'s certificate from the client.
    pub fn server(&self, peer: PeerId) -> Result<rustls::ServerConfig, TlsSetupError> {
        let verifier = Arc::new(ExpectPeer::new(peer, self.provider.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// Accepts one certificate: a single self-signed one whose public key is `peer`'s.
#[derive(Debug)]
struct ExpectPeer {
    peer: PeerId,
    provider: Arc<CryptoProvider>,
}

impl ExpectPeer {
    fn new(peer: PeerId, provider: Arc<CryptoProvider>) -> Self {
        ExpectPeer { peer, provider }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(CertificateError::UnknownIssuer.into());
        }
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| CertificateError::BadEncoding)?;
        let presented = cert.subject_public_key_info();
        let expected = ed25519_dalek::VerifyingKey::from_bytes(self.peer.as_bytes())
            .ok()
            .and_then(|k| k.to_public_key_der().ok())
            .ok_or(CertificateError::ApplicationVerificationFailure)?;
        if presented.as_ref() != expected.as_bytes() {
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        Ok(())
    }

    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(PeerIncompatible::NoSignatureSchemesInCommon.into());
        }
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for ExpectPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for ExpectPeer {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}
