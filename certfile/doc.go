// Package certfile reads a certificate file the way OpenSSL 3's tools do,
// and checks it: what `openssl x509` and `openssl pkey` read is read, and
// nothing they refuse is served.
//
// Parse splits a PEM file into its blocks (skipping what OpenSSL skips:
// bad base64, RFC 1421 headers, DER that is no certificate), chooses the
// private key and the leaf certificate that matches it (an unexpired
// candidate before an expired one), and searches the file's other
// certificates for the chain from the leaf's issuer towards a root, in
// signing order, whatever order the file had. An encrypted key (legacy PEM
// encryption, or PKCS#8 PBES2 with PBKDF2 or scrypt) is opened with the
// passphrase the caller supplies; a key that cannot be opened is a
// *KeyError, any other problem an *Error. Work is bounded: the file's size,
// its certificates and its key-derivation parameters.
//
// The package knows nothing of Vault or of NHN: the engine hands it a
// file's bytes and, when asked, the passphrase set for the certificate.
package certfile
