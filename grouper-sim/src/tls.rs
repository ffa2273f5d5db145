//! TLS for tests, the way campus servers are deployed: a certificate authority made by the test,
//! server certificates it signs (valid, expired, or for another host name), and a TLS front that
//! terminates TLS on a loopback port and passes the bytes to a plain server behind it (the
//! simulator, a fake hub, or a real JupyterHub), as an ingress or load balancer does.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM: what a client is told to trust (`ca_file`).
    pub cert_pem: String,
}

/// A server certificate and its key, PEM.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How long a server certificate is valid, relative to now.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From a day ago for a year.
    Current,
    /// Expired a day ago (valid for the year before).
    Expired,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    /// A server certificate for these names (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str], validity: Validity) -> ServerCert {
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let day = time::Duration::days(1);
        let now = time::OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (now - day, now + day * 365),
            Validity::Expired => (now - day * 366, now - day),
        };
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate to `path` (for `ca_file`).
    pub fn write_cert(&self, path: &Path) {
        std::fs::write(path, &self.cert_pem).expect("write the CA certificate");
    }
}

/// A TLS front; stops accepting when dropped.
pub struct TlsFront {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TlsFront {
    /// Terminates TLS with `cert` on a new loopback port and passes each connection to `backend`.
    pub fn start(cert: &ServerCert, backend: SocketAddr) -> TlsFront {
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build()
            .expect("TLS front runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the TLS front");
        let addr = listener.local_addr().expect("front address");
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // a failed handshake is the client refusing our certificate: nothing to pass on
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                });
            }
        });
        TlsFront {
            addr,
            runtime: Some(runtime),
        }
    }

    /// `https://127.0.0.1:PORT` or, with a name, `https://NAME:PORT` (the name must resolve to
    /// loopback, like `localhost`).
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
