#!/bin/sh
# make-certs.sh DIR [SERVICE] [NAMESPACE] [KEYTYPE]
#
# Make a CA and a serving certificate for the webhook's Service in DIR:
#   ca.crt ca.key tls.crt tls.key ca-bundle.b64 cabundle-patch.yaml
# (the last patches the MutatingWebhookConfiguration's caBundle; the
# self-signed overlay uses it).  The CA is kept when DIR already has one, so
# running it again renews the serving certificate under the same CA.
# SANs: SERVICE, SERVICE.NAMESPACE, SERVICE.NAMESPACE.svc,
# SERVICE.NAMESPACE.svc.cluster.local, localhost, 127.0.0.1, ::1.
# KEYTYPE is ec (ECDSA P-256, the default: a full TLS handshake costs a
# fraction of RSA's) or rsa (RSA-2048).  Prints the caBundle (base64 of
# ca.crt) for the MutatingWebhookConfiguration.
set -eu
dir=${1:?usage: make-certs.sh DIR [SERVICE] [NAMESPACE] [ec|rsa]}
svc=${2:-pipewarden-webhook}
ns=${3:-pipewarden-system}
keytype=${4:-ec}
days=${CERT_DAYS:-365}

case $keytype in
ec)  newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; } ;;
rsa) newkey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; } ;;
*)   echo "make-certs.sh: key type '$keytype' is not ec or rsa" >&2; exit 2 ;;
esac

mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.key" ]; then
	newkey "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" \
	    -subj "/CN=pipewarden-webhook-ca" -out "$dir/ca.crt" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
newkey "$dir/tls.key.new"
openssl req -new -key "$dir/tls.key.new" -subj "/CN=$svc.$ns.svc" \
    -out "$dir/tls.csr" 2>/dev/null
cat > "$dir/ext.cnf" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:::1
EXT
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$dir/ext.cnf" \
    -out "$dir/tls.crt.new" 2>/dev/null
# Replace the pair by renames, key first: a reader never sees a half file.
mv "$dir/tls.key.new" "$dir/tls.key"
mv "$dir/tls.crt.new" "$dir/tls.crt"
rm -f "$dir/tls.csr" "$dir/ext.cnf" "$dir/ca.srl"
chmod 644 "$dir/ca.crt" "$dir/tls.crt"
base64 -w0 < "$dir/ca.crt" > "$dir/ca-bundle.b64"
cat > "$dir/cabundle-patch.yaml" <<PATCH
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: pipewarden
webhooks:
  - name: inject.pipewarden.io
    clientConfig:
      caBundle: $(cat "$dir/ca-bundle.b64")
PATCH
cat "$dir/ca-bundle.b64"; echo
