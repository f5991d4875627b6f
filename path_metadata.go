package nhncert

import (
	"context"
	"crypto/sha256"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/certutil"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathMetadata(b *backend) *framework.Path {
	fields := withRotationFields(certResponseFields)
	delete(fields, "private_key")
	maps.Copy(fields, map[string]*framework.FieldSchema{
		"fingerprint_sha256":             {Type: framework.TypeString, Description: "SHA-256 of the leaf's DER, colon-separated hex."},
		"cached_at":                      {Type: framework.TypeString, Description: "When the file was downloaded, RFC 3339 with fractional seconds."},
		"cache_expires_at":               {Type: framework.TypeString, Description: "When the cached copy stops being served without asking NHN, RFC 3339."},
		"private_key_encrypted_upstream": {Type: framework.TypeBool, Description: "Whether NHN holds the private key encrypted (served decrypted with the passphrase of passphrases/<name>)."},
	})
	// What NHN's list said of the certificate, as the list's key_info has
	// it; empty when no list has named it yet.
	for _, k := range []string{"authority", "signature_algorithm", "file_creation_date", "expiration_date"} {
		fields[k] = keyInfoFields[k]
	}
	return &framework.Path{
		Pattern: "metadata/" + framework.MatchAllRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: certRequestFields(map[string]*framework.FieldSchema{
			"format": {
				Type:          framework.TypeString,
				Description:   `"pem" (default) or "der" (base64 DER values).`,
				Default:       formatPEM,
				AllowedValues: []any{formatPEM, formatDER},
				Query:         true,
			},
		}),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathMetadataRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "certificate-metadata"},
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: fields}},
				},
			},
		},
		HelpSynopsis:    pathMetadataHelpSyn,
		HelpDescription: pathMetadataHelpDesc,
	}
}

func (b *backend) pathMetadataRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	format := strings.ToLower(d.Get("format").(string))
	if format != formatPEM && format != formatDER {
		return logical.ErrorResponse(`format must be "pem" or "der"`), nil
	}
	c, resp, err := b.certificate(ctx, req, d)
	if c == nil {
		return resp, err
	}
	e, sess := c.entry, c.sess
	data := maps.Clone(e.data)
	if format == formatDER {
		if data, err = renderCert(e.bundle, formatDER, ""); err != nil {
			return nil, err
		}
	}
	delete(data, "private_key")

	sum := sha256.Sum256(e.bundle.Leaf.Raw)
	data["fingerprint_sha256"] = certutil.GetHexFormatted(sum[:], ":")
	data["cached_at"] = e.fetchedAt.UTC().Format(time.RFC3339Nano)
	data["cache_expires_at"] = e.fetchedAt.Add(sess.cfg.CacheTTL).UTC().Format(time.RFC3339Nano)
	data["private_key_encrypted_upstream"] = e.bundle.KeyEncrypted
	info := b.listedInfo(e)
	if id, ok := info.CertificateID(); ok {
		data["certificate_id"] = id
	}
	if info == nil {
		info = &certInfo{}
	}
	maps.Copy(data, b.rotationFields(sess.cfg, e, b.now()))
	data["authority"] = info.Authority
	data["signature_algorithm"] = info.SignatureAlgorithm
	data["file_creation_date"] = info.FileCreationDate
	data["expiration_date"] = info.ExpirationDate
	return &logical.Response{Data: data, Warnings: c.warnings}, nil
}

const pathMetadataHelpSyn = `Read a certificate's public parts and cache state, without its private key.`

const pathMetadataHelpDesc = `
Returns what certs/<name> returns except private_key: the certificate, its
chain, serial number, names and validity, plus fingerprint_sha256,
cached_at and cache_expires_at, authority, signature_algorithm,
file_creation_date and expiration_date from NHN's list when known, and
last_vault_rotation, rotation_period and ttl as certs/<name> has them.

It shares the cache with certs/<name>: reading one warms the other. Grant
"read" on metadata/* to monitoring that must never see private keys.

Parameters: refresh=true downloads now; format=pem|der.
`
