package nhncert

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
)

// maxPassphraseLength bounds a passphrase, in bytes: OpenSSL's own prompt
// takes at most 1023 (PEM_BUFSIZE less the NUL).
const maxPassphraseLength = 1023

func pathPassphrasesList(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "passphrases/?$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ListOperation: &framework.PathOperation{
				Callback:     b.pathPassphrasesList,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list", OperationSuffix: "passphrases"},
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys": {Type: framework.TypeStringSlice, Description: "Names of the certificates that have a passphrase, sorted."},
					}}},
				},
			},
		},
		HelpSynopsis:    pathPassphrasesHelpSyn,
		HelpDescription: pathPassphrasesHelpDesc,
	}
}

func pathPassphrases(b *backend) *framework.Path {
	written := map[int][]framework.Response{http.StatusNoContent: {{Description: "Written; the certificate's cached copy was dropped."}}}
	return &framework.Path{
		Pattern: "passphrases/" + framework.MatchAllRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {
				Type:        framework.TypeString,
				Description: "Certificate name as NHN Certificate Manager knows it, as in certs/<name>.",
				Required:    true,
			},
			"passphrase": {
				Type:         framework.TypeString,
				Description:  "Passphrase of the certificate's encrypted private key. Write only: never returned.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
		},
		ExistenceCheck: b.pathPassphraseExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathPassphraseRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "passphrase-state"},
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"set":        {Type: framework.TypeBool, Description: "Always true: a passphrase is set (a name without one is a 404)."},
						"updated_at": {Type: framework.TypeString, Description: "When it was last written, RFC 3339."},
					}}},
				},
			},
			logical.CreateOperation: &framework.PathOperation{
				Callback:                  b.pathPassphraseWrite,
				ForwardPerformanceStandby: true,
				DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "write", OperationSuffix: "passphrase"},
				Responses:                 written,
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                  b.pathPassphraseWrite,
				ForwardPerformanceStandby: true,
				DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "write", OperationSuffix: "passphrase"},
				Responses:                 written,
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                  b.pathPassphraseDelete,
				ForwardPerformanceStandby: true,
				DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "delete", OperationSuffix: "passphrase"},
				Responses: map[int][]framework.Response{
					http.StatusNoContent: {{Description: "Deleted; the certificate's cached copy was dropped."}},
				},
			},
		},
		HelpSynopsis:    pathPassphrasesHelpSyn,
		HelpDescription: pathPassphrasesHelpDesc,
	}
}

// passphraseName validates the request's name as certs/<name> does.
func passphraseName(d *framework.FieldData) (string, *logical.Response) {
	name := d.Get("name").(string)
	if err := validateName(name); err != nil {
		return "", logical.ErrorResponse(err.Error())
	}
	return name, nil
}

func (b *backend) pathPassphraseExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name := d.Get("name").(string)
	if validateName(name) != nil {
		return false, nil
	}
	pe, err := readPassphrase(ctx, req.Storage, name)
	return pe != nil, err
}

func (b *backend) pathPassphraseRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, resp := passphraseName(d)
	if resp != nil {
		return resp, nil
	}
	pe, err := readPassphrase(ctx, req.Storage, name)
	if err != nil || pe == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"set":        true,
		"updated_at": pe.UpdatedAt.UTC().Format(time.RFC3339),
	}}, nil
}

func (b *backend) pathPassphraseWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, resp := passphraseName(d)
	if resp != nil {
		return resp, nil
	}
	b.rememberMountPath(req)
	raw, ok := d.GetOk("passphrase")
	pass, _ := raw.(string)
	switch {
	case !ok || pass == "":
		return logical.ErrorResponse("passphrase is required and must not be empty (to remove one, delete the path)"), nil
	case len(pass) > maxPassphraseLength:
		return logical.ErrorResponse(fmt.Sprintf("passphrase is %d bytes long; at most %d are accepted", len(pass), maxPassphraseLength)), nil
	}
	pe := &passphraseEntry{Name: name, Passphrase: pass, UpdatedAt: time.Now().UTC()}
	err := b.cache.changePassphrase(ctx, req.Storage, name, func() error {
		if err := writePassphrase(ctx, req.Storage, pe); err != nil {
			return fmt.Errorf("storing the passphrase of %s: %w", safetext.Quote(name), err)
		}
		return nil
	})
	return nil, err
}

func (b *backend) pathPassphraseDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, resp := passphraseName(d)
	if resp != nil {
		return resp, nil
	}
	b.rememberMountPath(req)
	err := b.cache.changePassphrase(ctx, req.Storage, name, func() error {
		if err := deletePassphrase(ctx, req.Storage, name); err != nil {
			return fmt.Errorf("deleting the passphrase of %s: %w", safetext.Quote(name), err)
		}
		return nil
	})
	return nil, err
}

func (b *backend) pathPassphrasesList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := listPassphraseNames(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

const pathPassphrasesHelpSyn = `Set the passphrase of a certificate whose private key NHN holds encrypted.`

const pathPassphrasesHelpDesc = `
NHN's console takes a private key with a passphrase. For such a
certificate, write the passphrase once here; certs/<name> then serves the
key decrypted, in every format, and metadata/<name> says
private_key_encrypted_upstream=true. Both forms OpenSSL writes are read:
the legacy PEM encryption (Proc-Type: 4,ENCRYPTED and DEK-Info, AES or
DES-EDE3) and PKCS#8 ENCRYPTED PRIVATE KEY with PBES2 (PBKDF2 or scrypt,
AES or DES-EDE3).

  vault write <mount>/passphrases/<name> passphrase=-    (reads it from stdin)

The passphrase is never returned: a read answers only set=true and
updated_at (a name without one is a 404), and a list gives the names that
have one. It is stored seal-wrapped, and never logged or put in an error,
event or metric. Writing or deleting it drops the certificate's cached copy.

Names follow certs/<name>'s rules. Grant "create" and "update" on
passphrases/* to the operators who upload certificates to NHN, and only
"read" on certs/* to the servers.
`
