package nhncert

import (
	"context"
	"maps"
	"net/http"
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
				Type:          framework.TypeString,
				Description:   `"pem" (default), "der" (base64 DER values) or "pem_bundle" (certificate holds the key, the leaf and the chain in one PEM).`,
				Default:       formatPEM,
				AllowedValues: []any{formatPEM, formatDER, formatPEMBundle},
				Query:         true,
			},
			"private_key_format": {
				Type:          framework.TypeString,
				Description:   `"" (the key as NHN stores it) or "pkcs8".`,
				AllowedValues: []any{"", keyFormatPKCS8},
				Query:         true,
			},
		}),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathCertsRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "certificate"},
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: certResponseFields}},
				},
			},
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
	format := strings.ToLower(d.Get("format").(string))
	keyFormat := strings.ToLower(d.Get("private_key_format").(string))
	switch format {
	case formatPEM, formatDER, formatPEMBundle:
	default:
		return logical.ErrorResponse(`format must be "pem", "der" or "pem_bundle"`), nil
	}
	if keyFormat != "" && keyFormat != keyFormatPKCS8 {
		return logical.ErrorResponse(`private_key_format must be "" or "pkcs8"`), nil
	}
	c, resp, err := b.certificate(ctx, req, d)
	if c == nil {
		return resp, err
	}
	var data map[string]any
	if format == formatPEM && keyFormat == "" {
		// Cloned so that nothing downstream can change the cached map.
		data = maps.Clone(c.entry.data)
	} else if data, err = renderCert(c.entry.bundle, format, keyFormat); err != nil {
		return nil, err
	}
	if id, ok := b.listedInfo(c.entry).certificateID(); ok {
		data["certificate_id"] = id
	}
	return &logical.Response{Data: data, Warnings: c.warnings}, nil
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
	sess, err := b.session(ctx, req.Storage)
	if err != nil {
		return nil, nil, err
	}
	if sess == nil {
		resp, err := errNotConfigured()
		return nil, resp, err
	}
	e, warnings, err := b.cache.lookup(ctx, req.Storage, sess, name, d.Get("refresh").(bool))
	if err != nil {
		return nil, nil, certError(err)
	}
	return &servedCert{sess: sess, entry: e, warnings: warnings}, nil, nil
}

const pathCertsHelpSyn = `Read a certificate and its private key from NHN Certificate Manager.`

const pathCertsHelpDesc = `
Returns the certificate file registered under <name> in NHN Certificate
Manager, split the way the PKI engine names things: certificate (the leaf),
issuing_ca, ca_chain (issuer first, up to the root if the file has it),
private_key and private_key_type, plus serial_number, common_name,
dns_names, not_before and not_after.

The first read downloads the file; later reads within the config's
cache_ttl are served from Vault's storage without calling NHN. When NHN
fails, a cached certificate that has not expired is served with a warning.

Parameters:
  refresh=true              download now, ignoring the cache
  format=pem|der|pem_bundle pem_bundle puts the key, leaf and chain in
                            "certificate"; der gives base64 DER values
  private_key_format=pkcs8  convert the key to PKCS#8

A name NHN does not know is a 404. The response has no numeric
"expiration" field on purpose: Vault Agent then re-reads the secret every
static_secret_render_interval and picks up a certificate rotated in NHN.
`
