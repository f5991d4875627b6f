package nhncert

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathCertsList(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "certs/?$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: map[string]*framework.FieldSchema{
			"status": {
				Type:          framework.TypeLowerCaseString,
				Description:   `Which certificates to list: "all", "expired" or "unexpired" (default), as NHN filters them.`,
				Default:       "unexpired",
				AllowedValues: []any{"all", "expired", "unexpired"},
				Query:         true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ListOperation: &framework.PathOperation{
				Callback:     b.pathCertsList,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list", OperationSuffix: "certificates"},
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys":     {Type: framework.TypeStringSlice, Description: "Certificate names, sorted."},
						"key_info": {Type: framework.TypeMap, Description: "Per name: authority, domains, signature_algorithm, file_creation_date, expiration_date."},
					}}},
				},
			},
		},
		HelpSynopsis:    pathCertsListHelpSyn,
		HelpDescription: pathCertsListHelpDesc,
	}
}

func (b *backend) pathCertsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	status := d.Get("status").(string)
	switch status {
	case "all", "expired", "unexpired":
	default:
		return logical.ErrorResponse(`status must be "all", "expired" or "unexpired"`), nil
	}
	st, err := b.mount(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return errNotConfigured()
	}
	infos, unservable, err := st.client.ListCertificates(ctx, strings.ToUpper(status))
	if err != nil {
		return nil, certError(err)
	}
	keys := make([]string, len(infos))
	keyInfo := make(map[string]any, len(infos))
	for i, c := range infos {
		keys[i] = c.Name
		domains := c.Domains
		if domains == nil {
			domains = []string{}
		}
		keyInfo[c.Name] = map[string]any{
			"authority":           c.Authority,
			"domains":             domains,
			"signature_algorithm": c.SignatureAlgorithm,
			"file_creation_date":  c.FileCreationDate,
			"expiration_date":     c.ExpirationDate,
		}
	}
	resp := logical.ListResponseWithInfo(keys, keyInfo)
	if unservable > 0 {
		resp.AddWarning(fmt.Sprintf("%d certificate name(s) in NHN were left out: names must be at most %d characters of letters, digits, '.', '-', '_' and '*', without '..'", unservable, maxNameLength))
	}
	return resp, nil
}

const pathCertsListHelpSyn = `List the certificates in NHN Certificate Manager.`

const pathCertsListHelpDesc = `
Lists every certificate name in the configured NHN project, across all of
NHN's pages, sorted. key_info holds, per name, authority, domains (empty
where the API version gives none), signature_algorithm, file_creation_date
and expiration_date (YYYY-MM-DD, as NHN gives them).

status=all|expired|unexpired (default unexpired) filters as NHN does.
`
