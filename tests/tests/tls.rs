//! Syncing with an `https://` server: a private CA given with `--ca-file` is trusted, and a
//! server whose certificate nothing vouches for is refused. The server sits behind a small
//! TLS-terminating proxy (as README suggests deploying it), built here with rustls.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tasksync_e2e::{subdir, Daemon, Server};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A CA (PEM) and a certificate and key for 127.0.0.1 that it signed.
fn certificates() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca_cert.pem(), leaf_cert.der().clone(), key)
}

/// Accepts TLS on a loopback port and forwards the plain bytes to `upstream`.
struct TlsProxy {
    addr: String,
    _runtime: tokio::runtime::Runtime,
}

impl TlsProxy {
    fn start(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        upstream: String,
    ) -> TlsProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsProxy {
            addr,
            _runtime: runtime,
        }
    }
}

#[test]
fn tasks_sync_over_https_with_a_private_ca_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&subdir(&dir, "server"));
    let (ca_pem, cert, key) = certificates();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let proxy = TlsProxy::start(cert, key, server.addr.clone());
    let url = format!("https://{}", proxy.addr);

    let trusting = Daemon::builder(&subdir(&dir, "trusting"))
        .server(&url)
        .args(&["--ca-file", ca_file.to_str().unwrap()])
        .manual_sync()
        .start();
    let added = trusting.ctl(&["--json", "add", "over TLS"]).json();
    let (code, report) = trusting.sync();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["synced_items"], 1);
    assert_eq!(server.tasks()[0]["id"], added["id"]);

    let wary = Daemon::start_manual_sync(&subdir(&dir, "wary"), &url);
    wary.ctl(&["add", "stays home"]);
    let (code, report) = wary.sync();
    assert_eq!(code, 4, "{report}");
    let error = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        error.contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );
    assert_eq!(
        server.tasks().len(),
        1,
        "nothing crossed an unverified connection"
    );
}

#[test]
fn a_ca_file_without_certificates_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("empty.pem");
    std::fs::write(&ca_file, "not a certificate\n").unwrap();
    let (code, message) = Daemon::builder(dir.path())
        .server("https://127.0.0.1:9")
        .args(&["--ca-file", ca_file.to_str().unwrap()])
        .run_to_exit();
    assert_eq!(code, Some(1));
    assert!(
        message.contains("ca_file") && message.contains("no PEM certificate"),
        "{message}"
    );
}
