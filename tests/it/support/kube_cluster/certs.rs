//! The test cluster's certificates, made with openssl: a CA of its own, a serving certificate
//! for 127.0.0.1 signed by it, the ServiceAccount key pair, and a CA that signed nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::KubeCluster;
use super::process::run_ok;

impl KubeCluster {
    /// A CA that signed nothing of this cluster (its certificate file).
    pub fn other_ca(&self) -> PathBuf {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(self.dir.path()).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=another-ca",
            "-keyout",
            "other-ca.key",
            "-out",
            "other-ca.crt",
        ]);
        run_ok("openssl: another CA", cmd);
        self.dir.path().join("other-ca.crt")
    }
}

/// A CA, a serving certificate for 127.0.0.1 signed by it, and the ServiceAccount signing key
/// pair 1.20 requires, all made with openssl in `dir`.
pub fn make_certificates(dir: &Path) {
    let ssl = |what: &str, args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        run_ok(what, cmd);
    };
    ssl(
        "openssl: CA",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bff-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
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
