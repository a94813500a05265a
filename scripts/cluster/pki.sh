# shellcheck shell=bash
# The single-node cluster's certificates and kubeconfigs (sourced by scripts/check-cluster.sh).
# One CA signs everything: the apiserver's serving certificate (127.0.0.1 is among its names, so
# pods on the host network reach the API at 127.0.0.1), and one client certificate in
# system:masters that the controller-manager, the scheduler, the kubelet and the script share.
# The cluster is a throwaway on 127.0.0.1; separate identities per component would prove nothing
# here that RBAC tests (tests/it/real_kube) do not already prove.

pki_make() { # DIR
  local d=$1
  [[ -s $d/admin.kubeconfig ]] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=bff-cluster-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' \
    > "$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=bff-cluster-admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/admin.ext"
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/admin.ext" -out "$d/admin.crt" 2>/dev/null
  # Service-account tokens: the apiserver verifies, the controller-manager signs.
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  cat > "$d/admin.kubeconfig.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: bff
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $d/ca.crt
users:
- name: admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: bff
  context: {cluster: bff, user: admin}
current-context: bff
KC
  mv "$d/admin.kubeconfig.tmp" "$d/admin.kubeconfig"
}
