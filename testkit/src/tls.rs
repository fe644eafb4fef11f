//! TLS material made with the `openssl` CLI: a private CA and the certificates it signs.

use std::path::Path;

use base64::Engine;
use tempfile::TempDir;

use crate::openssl::openssl;

/// EC P-256 keys, unencrypted: fast to make.
const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A private CA in a temporary directory (removed on drop) with the certificates it issued.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// A CA (`ca.pem`, `ca.key`) and a `localhost` server certificate signed by it
    /// (`leaf.pem`, `leaf.key`).
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-tls-")
            .tempdir()
            .expect("certificate directory");
        openssl(
            dir.path(),
            &[
                &["req", "-x509"][..],
                &EC,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
                &["-subj", "/CN=tollgate test CA"],
            ]
            .concat(),
        );
        let ca = Self { dir };
        ca.issue("leaf", "localhost", "serverAuth");
        ca
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate `<name>.pem` + `<name>.key` for `cn` signed by the CA, for `usage`
    /// (`serverAuth` or `clientAuth`).
    pub fn issue(&self, name: &str, cn: &str, usage: &str) {
        let dir = self.dir.path();
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let subject = format!("/CN={cn}");
        openssl(
            dir,
            &[
                &["req"][..],
                &EC,
                &["-keyout", &key, "-out", &csr, "-subj", &subject],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName=DNS:{cn}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
        )
        .expect("write ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// DER bytes of the first certificate in a PEM file.
pub fn der_of(pem_path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_path).expect("read certificate");
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM base64")
}
