//! The test cluster's certificates, made with openssl: a CA of its own, a serving certificate
//! for 127.0.0.1 signed by it, the ServiceAccount key pair, and a CA that signed nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::KubeCluster;
use super::process::run_ok;

impl KubeCluster {
    /// A CA that signed nothing of this cluster (its certificate file).
    pub fn other_ca(&self) -> PathBuf {
        self_signed_ca(self.dir.path(), "another-ca", "other-ca");
        self.dir.path().join("other-ca.crt")
    }
}

/// A self-signed CA named `cn` in `dir`: `{stem}.key` and `{stem}.crt`.
fn self_signed_ca(dir: &Path, cn: &str, stem: &str) {
    let (subj, key, crt) = (
        format!("/CN={cn}"),
        format!("{stem}.key"),
        format!("{stem}.crt"),
    );
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &subj,
        "-keyout",
        &key,
        "-out",
        &crt,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run_ok(&format!("openssl: CA {cn}"), cmd);
}

/// A CA, a serving certificate for 127.0.0.1 signed by it, and the ServiceAccount signing key
/// pair 1.20 requires, all made with openssl in `dir`.
pub fn make_certificates(dir: &Path) {
    let ssl = |what: &str, args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        run_ok(what, cmd);
    };
    self_signed_ca(dir, "bff-test-ca", "ca");
    ssl(
        "openssl: server key",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=kube-apiserver",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    ssl(
        "openssl: server certificate",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    ssl(
        "openssl: service-account key",
        &["genrsa", "-out", "sa.key", "2048"],
    );
    ssl(
        "openssl: service-account public key",
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    );
}
