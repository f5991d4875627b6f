package nhncert

import (
	"context"
	"errors"
	"maps"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathCerts(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "certs/" + framework.MatchAllRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: certRequestFields(map[string]*framework.FieldSchema{
			"format": {
				Type: framework.TypeString,
				Description: `"pem" (default), "der" (base64 DER values), "pem_bundle" (certificate holds the key, the leaf and the chain in one PEM), ` +
					`"pkcs12_bundle" or "jks_bundle" (certificate holds a base64 PKCS#12 file or Java KeyStore with the key, the leaf and the chain).`,
				Default:       formatPEM,
				AllowedValues: []any{formatPEM, formatDER, formatPEMBundle, formatPKCS12Bundle, formatJKSBundle},
				Query:         true,
			},
			"private_key_format": {
				Type:          framework.TypeString,
				Description:   `"" (the key as NHN stores it) or "pkcs8".`,
				AllowedValues: []any{"", keyFormatPKCS8},
				Query:         true,
			},
			"pkcs12_password": {
				Type:         framework.TypeString,
				Description:  `Password of the PKCS#12 file when format=pkcs12_bundle (default "changeit", as Vault PKI). Use the default and protect the file by other means, or a high-entropy password.`,
				Default:      defaultKeystorePassword,
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				Query:        true,
			},
			"pkcs12_encoder": {
				Type: framework.TypeString,
				Description: `PKCS#12 profile when format=pkcs12_bundle: "modern2023" (default; AES-256 and HMAC-SHA-256, read by OpenSSL 1.1.1+ and Java 12+), ` +
					`"modern2026" (PBMAC1; OpenSSL 3.4+ and Java 26+ only), "legacy_des" or "legacy_rc2" (weak, for old readers).`,
				Default:       defaultPKCS12Encoder,
				AllowedValues: stringsToAny(pkcs12EncoderNames()),
				Query:         true,
			},
			"jks_password": {
				Type:         framework.TypeString,
				Description:  `Password of the Java KeyStore and of its key entry when format=jks_bundle (default "changeit", as Vault PKI).`,
				Default:      defaultKeystorePassword,
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				Query:        true,
			},
			"jks_private_key_alias": {
				Type:        framework.TypeString,
				Description: `Alias of the key entry when format=jks_bundle (default "1", as Vault PKI); case-sensitive.`,
				Default:     defaultJKSAlias,
				Query:       true,
			},
		}),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: answers(b.pathCertsRead, "read", "certificate", withRotationFields(certResponseFields)),
			// The same read, with its parameters in a request body: Vault
			// Agent (consul-template's secret with arguments) and VSO
			// (VaultDynamicSecret with params) send parameters only as a
			// write. It changes nothing; a policy grants it as "update".
			logical.UpdateOperation: answers(b.pathCertsRead, "read", "certificate-with-parameters", withRotationFields(certResponseFields)),
		},
		HelpSynopsis:    pathCertsHelpSyn,
		HelpDescription: pathCertsHelpDesc,
	}
}

// certRequestFields are the fields of a path that reads one certificate
// (certs/<name>, metadata/<name>): the name, refresh, and the path's own.
func certRequestFields(own map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	own["name"] = &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Certificate name as NHN Certificate Manager knows it (e.g. *.example.com, \"example.com (new)\"); anything but empty, \".\", \"..\", '/', '\\', control characters or over 512 bytes.",
		Required:    true,
	}
	own["refresh"] = &framework.FieldSchema{
		Type:        framework.TypeBool,
		Description: "Fetch the certificate from NHN now instead of using the cached copy.",
		Query:       true,
	}
	return own
}

var certResponseFields = map[string]*framework.FieldSchema{
	"certificate":      {Type: framework.TypeString, Description: "The leaf certificate (PEM, or base64 DER)."},
	"issuing_ca":       {Type: framework.TypeString, Description: "The certificate that signed the leaf; empty when the file has none."},
	"ca_chain":         {Type: framework.TypeStringSlice, Description: "From the leaf's issuer up towards the root, in signing order."},
	"full_chain":       {Type: framework.TypeString, Description: "The leaf, then ca_chain without a self-signed root, in one PEM (nginx ssl_certificate, Kubernetes tls.crt); absent with format=der."},
	"private_key":      {Type: framework.TypeString, Description: "The private key.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"private_key_type": {Type: framework.TypeString, Description: `"rsa", "ec" or "ed25519".`},
	"serial_number":    {Type: framework.TypeString, Description: "Leaf serial number, colon-separated hex."},
	"common_name":      {Type: framework.TypeString, Description: "Leaf subject common name."},
	"dns_names":        {Type: framework.TypeStringSlice, Description: "Leaf DNS subject alternative names."},
	"not_before":       {Type: framework.TypeString, Description: "Start of validity, RFC 3339."},
	"not_after":        {Type: framework.TypeString, Description: "End of validity, RFC 3339."},
	"certificate_id":   {Type: framework.TypeInt64, Description: "NHN's certificateId (a number) from NHN's list; absent when no list has given one."},
}

func (b *backend) pathCertsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.serveRead(d, func() (*servedCert, *logical.Response, error) { return b.certificate(ctx, req, d) })
}

// serveRead answers a read of one certificate (certs/<name>, hosts/<host>)
// in the format d asks for: get finds the certificate once the parameters
// are known to be valid.
func (b *backend) serveRead(d *framework.FieldData, get func() (*servedCert, *logical.Response, error)) (*logical.Response, error) {
	format := strings.ToLower(d.Get("format").(string))
	keyFormat := strings.ToLower(d.Get("private_key_format").(string))
	ks := keystoreOptions{
		pkcs12Password: d.Get("pkcs12_password").(string),
		pkcs12Encoder:  strings.ToLower(d.Get("pkcs12_encoder").(string)),
		jksPassword:    d.Get("jks_password").(string),
		jksAlias:       d.Get("jks_private_key_alias").(string),
	}
	switch format {
	case formatPEM, formatDER, formatPEMBundle:
	case formatPKCS12Bundle, formatJKSBundle:
		// Before anything reaches NHN or the cache.
		if err := ks.validate(format); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
	default:
		return logical.ErrorResponse(`format must be "pem", "der", "pem_bundle", "pkcs12_bundle" or "jks_bundle"`), nil
	}
	if keyFormat != "" && keyFormat != keyFormatPKCS8 {
		return logical.ErrorResponse(`private_key_format must be "" or "pkcs8"`), nil
	}
	c, resp, err := get()
	if c == nil {
		return resp, err
	}
	var data map[string]any
	switch {
	case format == formatPEM && keyFormat == "":
		// Cloned so that nothing downstream can change the cached map.
		data = maps.Clone(c.entry.data)
	case format == formatPKCS12Bundle || format == formatJKSBundle:
		if data, err = renderKeystore(c.entry.bundle, format, keyFormat, ks); err != nil {
			return nil, err // never quotes a password
		}
	default:
		if data, err = renderCert(c.entry.bundle, format, keyFormat); err != nil {
			return nil, err
		}
	}
	maps.Copy(data, b.rotationFields(c.sess.cfg, c.entry, b.now()))
	if id, ok := b.listedInfo(c.entry).CertificateID(); ok {
		data["certificate_id"] = id
	}
	return &logical.Response{Data: data, Warnings: c.warnings}, nil
}

// withRotationFields is a read path's response schema with the rotation
// fields (rotation.go) added.
func withRotationFields(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	out := maps.Clone(fields)
	maps.Copy(out, rotationResponseFields)
	return out
}

// servedCert is a cache entry being served, the session it was served by and
// the warnings to pass on.
type servedCert struct {
	sess     *session
	entry    *cacheEntry
	warnings []string
}

// certificate validates the name and returns its cache entry, downloading
// it if needed, or else the response or error to answer with.
func (b *backend) certificate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*servedCert, *logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateName(name); err != nil {
		return nil, logical.ErrorResponse(err.Error()), nil
	}
	b.rememberMountPath(req)
	refresh := d.Get("refresh").(bool)
	var served *servedCert
	resp, err := b.readWithSession(ctx, req.Storage, func(sess *session) (readOutcome, error) {
		e, warnings, outcome, err := b.cache.lookup(ctx, req.Storage, sess, name, refresh)
		if err == nil {
			served = &servedCert{sess: sess, entry: e, warnings: warnings}
		}
		return outcome, err
	}, certError)
	if resp != nil || err != nil {
		return nil, resp, err
	}
	return served, nil, nil
}

// readWithSession runs read (a certs/<name> or hosts/<hostname> read) with
// the config now stored and counts it in the read metrics. A config write
// that changes the upstream (or a delete) drops the downloads in flight;
// the read then goes on once with the config now stored, so a reader sees
// at most one 503 per change, not a purge. mapErr turns the read's own
// error into the answer's.
func (b *backend) readWithSession(ctx context.Context, s logical.Storage, read func(*session) (readOutcome, error), mapErr func(error) error) (*logical.Response, error) {
	for attempt := 0; ; attempt++ {
		sess, err := b.session(ctx, s)
		if err != nil {
			return nil, err
		}
		if sess == nil {
			return errNotConfigured()
		}
		outcome, err := read(sess)
		if errors.Is(err, errConfigChanged) && attempt == 0 {
			continue
		}
		b.metrics.read(outcome)
		if err != nil {
			return nil, mapErr(err)
		}
		return nil, nil
	}
}

const pathCertsHelpSyn = `Read a certificate and its private key from NHN Certificate Manager.`

const pathCertsHelpDesc = `
Returns the certificate file registered under <name> in NHN Certificate
Manager, split the way the PKI engine names things: certificate (the leaf),
issuing_ca, ca_chain (issuer first, up to the root if the file has it),
private_key and private_key_type, plus serial_number, common_name,
dns_names, not_before and not_after, and full_chain (the leaf and the
chain without its self-signed root, one PEM: nginx's ssl_certificate, a
Kubernetes tls.crt).

The first read downloads the file; later reads within the config's
cache_ttl are served from Vault's storage without calling NHN. When NHN
fails, a cached certificate that has not expired is served with a warning.

Parameters:
  refresh=true              download now, ignoring the cache
  format=pem|der|pem_bundle|pkcs12_bundle|jks_bundle
                            pem_bundle puts the key, leaf and chain in
                            "certificate"; der gives base64 DER values (and
                            no full_chain); pkcs12_bundle and jks_bundle put
                            a base64 PKCS#12 file or Java KeyStore holding
                            the key, the leaf and the chain in "certificate",
                            the other fields staying PEM
  pkcs12_password           default "changeit" (as Vault PKI)
  pkcs12_encoder            modern2023 (default), modern2026 (PBMAC1: OpenSSL
                            3.4+ and Java 26+ only), legacy_des, legacy_rc2
  jks_password              default "changeit" (as Vault PKI)
  jks_private_key_alias     default "1" (as Vault PKI)
  private_key_format=pkcs8  convert the key to PKCS#8

The same certificate read with the same parameters gives the same
keystore bytes, so that Vault Agent and VSO see a change only on rotation.

For Vault Agent and the Vault Secrets Operator, every read carries
last_vault_rotation (when this copy was downloaded), rotation_period (the
seconds between the engine's checks of NHN) and ttl (seconds until this
copy will have been checked against NHN again, plus jitter; at least 3):
Agent reads again ttl+1 s later, whatever its static_secret_render_interval,
and VSO (allowStaticCreds) re-syncs then. The response has no numeric
"expiration" field on purpose: Agent would then sleep most of the
certificate's lifetime and miss a certificate rotated in NHN.

The same parameters may be sent as a write (vault write, consul-template's
secret with arguments, VSO's params): it reads, changes nothing, and needs
the "update" capability.

A name NHN does not know is a 404.
`
