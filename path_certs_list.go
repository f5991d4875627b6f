package nhncert

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/hostmatch"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/safetext"
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
			"expiring_within": {
				Type:        framework.TypeDurationSecond,
				Description: `Only certificates whose expiration_date falls within this duration from now (e.g. "720h"); with status=all, expired ones too.`,
				Query:       true,
			},
			"host": {
				Type:        framework.TypeString,
				Description: `Only certificates whose listed domains cover this DNS host name (the rules of hosts/<hostname>; none where the API version lists no domains).`,
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ListOperation: answers(b.pathCertsList, "list", "certificates", map[string]*framework.FieldSchema{
				"keys":     {Type: framework.TypeStringSlice, Description: "Certificate names, sorted."},
				"key_info": {Type: framework.TypeMap, Description: "Per name: " + strings.Join(slices.Sorted(maps.Keys(keyInfoFields)), ", ") + "."},
			}),
		},
		HelpSynopsis:    pathCertsListHelpSyn,
		HelpDescription: pathCertsListHelpDesc,
	}
}

// keyInfoFields are the fields of one key_info entry. The list's response
// schema names them, and the tests check every entry against them.
var keyInfoFields = map[string]*framework.FieldSchema{
	"authority":           {Type: framework.TypeString, Description: "The certificate's issuing authority, as NHN lists it."},
	"domains":             {Type: framework.TypeStringSlice, Description: "The domains NHN lists; empty where the API version gives none (v1.1)."},
	"signature_algorithm": {Type: framework.TypeString, Description: "As NHN lists it."},
	"file_creation_date":  {Type: framework.TypeString, Description: "When the file was uploaded, YYYY-MM-DD, as NHN gives it."},
	"expiration_date":     {Type: framework.TypeString, Description: "YYYY-MM-DD, as NHN gives it."},
	"expires_in_days":     {Type: framework.TypeInt, Description: "Whole days from today (UTC) to expiration_date; negative once expired. Absent when NHN gives no valid date."},
	"certificate_id":      {Type: framework.TypeInt64, Description: "NHN's certificateId (a number), as NHN lists it; absent when NHN's answer has none."},
}

// maxWarnedNames bounds the unservable names one list warning spells out.
const maxWarnedNames = 20

func (b *backend) pathCertsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	status := d.Get("status").(string)
	switch status {
	case "all", "expired", "unexpired":
	default:
		return logical.ErrorResponse(`status must be "all", "expired" or "unexpired"`), nil
	}
	var within time.Duration
	filter := false
	if v, ok := d.GetOk("expiring_within"); ok {
		within, filter = time.Duration(v.(int))*time.Second, true
	}
	host := ""
	if v, ok := d.GetOk("host"); ok {
		h, err := hostmatch.Normalize(v.(string))
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		host = h
	}
	b.rememberMountPath(req)
	sess, err := b.session(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return errNotConfigured()
	}
	listed, err := sess.client.ListCertificates(ctx, strings.ToUpper(status))
	if err != nil {
		return nil, certError(err)
	}
	infos, unservable := servable(listed)
	b.recordList(sess.cfg.Generation, infos, status)

	now := b.now()
	keys := make([]string, 0, len(infos))
	keyInfo := make(map[string]any, len(infos))
	for _, c := range infos {
		days, dated := expiresInDays(c.ExpirationDate, now)
		if filter && (!dated || time.Duration(days)*24*time.Hour > within) {
			continue
		}
		if host != "" && !hostmatch.CoversAny(c.Domains, host, sess.cfg.hostsWildcards()) {
			continue
		}
		domains := c.Domains
		if domains == nil {
			domains = []string{}
		}
		info := map[string]any{
			"authority":           c.Authority,
			"domains":             domains,
			"signature_algorithm": c.SignatureAlgorithm,
			"file_creation_date":  c.FileCreationDate,
			"expiration_date":     c.ExpirationDate,
		}
		if dated {
			info["expires_in_days"] = days
		}
		if id, ok := c.CertificateID(); ok {
			info["certificate_id"] = id
		}
		keys = append(keys, c.Name)
		keyInfo[c.Name] = info
	}
	resp := logical.ListResponseWithInfo(keys, keyInfo)
	if len(unservable) > 0 {
		resp.AddWarning(unservableWarning(unservable))
	}
	return resp, nil
}

// unservableWarning names the listed names this engine cannot serve, each
// quoted and cut (they come from outside and may hold anything), at most
// maxWarnedNames of them.
func unservableWarning(names []string) string {
	shown := names[:min(len(names), maxWarnedNames)]
	quoted := make([]string, len(shown))
	for i, n := range shown {
		quoted[i] = safetext.Quote(n)
	}
	more := ""
	if len(names) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(names)-len(shown))
	}
	return fmt.Sprintf("%d certificate name(s) in NHN cannot be served and were left out: %s%s. "+
		"A name must not be empty, \".\" or \"..\", hold '/', '\\' or control characters, or be longer than %d bytes; rename it in NHN's console to read it here",
		len(names), strings.Join(quoted, ", "), more, maxNameLength)
}

// expiresInDays returns the whole days from today (UTC) to an NHN
// expiration date (YYYY-MM-DD), negative once it has passed.
func expiresInDays(date string, now time.Time) (int, bool) {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return 0, false
	}
	today := now.UTC().Truncate(24 * time.Hour)
	return int(t.Sub(today).Hours() / 24), true
}

const pathCertsListHelpSyn = `List the certificates in NHN Certificate Manager.`

const pathCertsListHelpDesc = `
Lists every certificate name in the configured NHN project, across all of
NHN's pages, sorted. key_info holds, per name, authority, domains (empty
where the API version gives none), signature_algorithm, file_creation_date
and expiration_date (YYYY-MM-DD, as NHN gives them), and certificate_id
(NHN's certificateId) when NHN gives one. A name the engine cannot serve
(empty, "." or "..", holding '/', '\' or control characters, over 512
bytes) is left out and named in the response's warning.

status=all|expired|unexpired (default unexpired) filters as NHN does.
expiring_within=<duration> (e.g. 720h) keeps only certificates whose
expiration_date is at most that far away. key_info also holds
expires_in_days (whole days from today, UTC). host=<hostname> keeps only
the certificates whose listed domains cover that host (API v1.3; v1.1
lists no domains). A monitoring check can be:

  vault list -format=json -detailed nhncert/certs | jq -e '[.data.key_info[] | select(.expires_in_days <= 30)] | length == 0'
`
