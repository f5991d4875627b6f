package nhncert

import (
	"context"
	"maps"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/nhncert/vault-plugin-secrets-nhncert/hostmatch"
)

func pathHosts(b *backend) *framework.Path {
	// The parameters of certs/<name> (format, keystore options, refresh),
	// the host in place of the name.
	fields := maps.Clone(pathCerts(b).Fields)
	delete(fields, "name")
	fields["hostname"] = &framework.FieldSchema{
		Type: framework.TypeString,
		Description: "A DNS host name: ASCII letters, digits, hyphens and dots, labels of 1-63 bytes, at most 253 bytes, " +
			"the last label not all digits; case and one trailing dot are ignored.",
		Required: true,
	}
	response := withRotationFields(certResponseFields)
	response["certificate_name"] = &framework.FieldSchema{Type: framework.TypeString, Description: "NHN's name of the certificate chosen for the host."}
	return &framework.Path{
		// Any string, '/' included: a malformed host is a 400 that names
		// the rule, not Vault's "unsupported path".
		Pattern: "hosts/" + framework.MatchAllRegex("hostname"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: fields,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathHostsRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "host-certificate"},
				Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: response}}},
			},
			// The same read with its parameters in a body, for Agent and
			// VSO, as on certs/<name>.
			logical.UpdateOperation: &framework.PathOperation{
				Callback:     b.pathHostsRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "host-certificate-with-parameters"},
				Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: response}}},
			},
		},
		HelpSynopsis:    pathHostsHelpSyn,
		HelpDescription: pathHostsHelpDesc,
	}
}

func (b *backend) pathHostsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	host, err := hostmatch.Normalize(d.Get("hostname").(string))
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	var choice *hostChoice
	resp, err := b.serveRead(d, func() (*servedCert, *logical.Response, error) {
		c, resp, err := b.hostCertificate(ctx, req, host, d.Get("refresh").(bool))
		if c == nil {
			return nil, resp, err
		}
		choice = c
		return c.served, nil, nil
	})
	if choice == nil || resp == nil || resp.IsError() {
		return resp, err
	}
	resp.Data["certificate_name"] = choice.name
	delete(resp.Data, "certificate_id")
	if choice.hasID {
		resp.Data["certificate_id"] = choice.id
	}
	// A switch to another certificate shows in NHN's list: the reader
	// comes back when this node has listed NHN again, or sooner.
	if !choice.listDue.IsZero() {
		ttl := hostsTTL(choice.listDue, time.Now(), rotationPeriod(choice.served.sess.cfg), b.jitter())
		if cur, ok := resp.Data["ttl"].(int64); !ok || ttl < cur {
			resp.Data["ttl"] = ttl
		}
	}
	return resp, nil
}

// hostsTTL is the ttl, in seconds, of a hosts answer given when the node
// next lists NHN: that time, plus the spread of rotationTiming, at least
// minRotationTTL.
func hostsTTL(listDue, now time.Time, period time.Duration, jitter float64) int64 {
	spread := min(time.Duration(float64(period)*rotationJitterShare), maxRotationJitter)
	return ceilSeconds(max(listDue.Sub(now)+time.Duration(jitter*float64(spread)), minRotationTTL))
}

const pathHostsHelpSyn = `Read the best certificate NHN Certificate Manager holds for a DNS host name.`

const pathHostsHelpDesc = `
For servers that know their own host name rather than NHN's name for a
certificate. Among the certificates whose leaf covers the host as a TLS
client checks it (a SAN dNSName equal to it, or a wildcard "*.<rest>"
covering exactly one left-most label) and that are valid now, the one with
the latest not_after is served, then the latest not_before, then the lowest
certificate_id, then the first name.

The answer is that of certs/<name> (same fields, same parameters: format,
private_key_format, the keystore ones, refresh), plus certificate_name and
certificate_id of the certificate chosen. ttl counts to the engine's next
look at NHN's list, so that Vault Agent and VSO follow a switch to another
certificate; refresh=true lists NHN again and downloads the chosen
certificate again.

A wildcard certificate's key is served for every host it covers: a policy
on hosts/www.example.com grants whatever certificate covers that host. The
config's hosts_wildcards=false limits the mount to certificates whose SAN
names the host exactly.

No valid certificate for the host: 404, saying how many candidates were
considered and how many had expired. A host name that is not an ASCII DNS
name is a 400 that names the rule, and is never sent to NHN. Write policies
and ask in lowercase: Vault matches policies on the path as written.
`
