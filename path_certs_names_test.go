package nhncert

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// freeTextNames are names NHN's console takes since names need not be the
// CN (release of 2025-11-25).
var freeTextNames = []string{
	"example.com (new)", "웹 서버 인증서", "100%", "%2f", "a?b=c", "a#b", "a..b",
	"( ) [ ] @ # % ? + , ; = ~ '", "example.com-2026", "*.example.com", "a+b",
}

// TestFreeTextNamesListedAndRead: every such name is listed, read from
// NHN under exactly that name (one percent-encoded segment, '*' as it is),
// cached under it and read again from the cache, with certificate_id from
// the list in key_info, certs/<name> and metadata/<name>.
func TestFreeTextNamesListedAndRead(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	chains := map[string]*emulator.Chain{}
	for _, n := range freeTextNames {
		chains[n] = h.putChain(n, emulator.ChainOptions{CommonName: "names.example.com"}, emulator.FileOptions{})
	}
	resp, err := h.request(logical.ListOperation, "certs/", nil)
	require.NoError(t, err)
	require.Empty(t, resp.Warnings)
	require.ElementsMatch(t, freeTextNames, resp.Data["keys"])
	info := resp.Data["key_info"].(map[string]any)

	for _, n := range freeTextNames {
		c, _ := h.emu.Get(n)
		require.NotZero(t, c.ID)
		require.Equal(t, c.ID, info[n].(map[string]any)["certificate_id"], "%q", n)

		d := h.read(n, nil).Data
		require.Equal(t, string(chains[n].LeafPEM), d["certificate"].(string)+"\n", "%q", n)
		require.Equal(t, c.ID, d["certificate_id"], "%q", n)
		md := h.readPath("metadata/"+n, nil).Data
		require.Equal(t, c.ID, md["certificate_id"], "%q", n)
		require.EqualValues(t, 1, h.fileCalls(n), "%q: one download, under its exact name", n)

		want := "/" + nhn.PathName(n) + "/files"
		found := false
		for _, u := range h.srv.RequestURIs() {
			found = found || strings.HasSuffix(u, want)
		}
		require.True(t, found, "%q went to NHN as %s", n, want)
	}
	// '*' as it is, a space and '%' encoded.
	uris := strings.Join(h.srv.RequestURIs(), "\n")
	require.Contains(t, uris, "/certificates/*.example.com/files")
	require.Contains(t, uris, "/certificates/example.com%20%28new%29/files")
	require.Contains(t, uris, "/certificates/100%25/files")
	require.Contains(t, uris, "/certificates/%252f/files")
	require.Contains(t, uris, "/certificates/a%2Bb/files", "'+' as %2B: a form decoder would read a raw '+' as a space")
	require.Contains(t, uris, "/certificates/"+url.PathEscape("웹 서버 인증서")+"/files")
	require.Len(t, h.cacheKeys(), len(freeTextNames))

	// A log line carries such a name quoted, never raw: a refused name's
	// control characters never reach the log.
	h.emu.SetFault(emulator.Fault{Mode: emulator.FaultDown})
	_, err = h.request(logical.ReadOperation, "certs/"+"웹 서버 인증서", map[string]any{"refresh": true})
	require.NoError(t, err)
	h.emu.ClearFault()
	require.Contains(t, h.logs.String(), `name="웹 서버 인증서"`, "quoted: a space cannot blur where the name ends")
}

// TestCertificateIDAbsentWhenNotListed: an NHN answer without certificateId
// (v1.1, or v1.3 from before the field) gives no certificate_id at all,
// not 0, and nothing else changes.
func TestCertificateIDAbsentWhenNotListed(t *testing.T) {
	for _, version := range []string{"v1.1", "v1.3"} {
		t.Run(version, func(t *testing.T) {
			h := newHarness(t)
			h.configure(map[string]any{"api_version": version})
			ch := h.putChain("x.example.com", emulator.ChainOptions{}, emulator.FileOptions{})
			if version == "v1.3" {
				c, _ := h.emu.Get("x.example.com")
				c.NoID = true
				h.emu.Put(c)
			}
			resp, err := h.request(logical.ListOperation, "certs/", nil)
			require.NoError(t, err)
			require.NotContains(t, resp.Data["key_info"].(map[string]any)["x.example.com"], "certificate_id")
			d := h.read("x.example.com", nil).Data
			require.NotContains(t, d, "certificate_id")
			require.Equal(t, string(ch.LeafPEM), d["certificate"].(string)+"\n")
			require.NotContains(t, h.readPath("metadata/x.example.com", nil).Data, "certificate_id")
		})
	}
}

// TestCertificateIDChangeIsARotation: a certificate deleted and registered
// again under the same name gets another certificateId; the background
// refresh sees another file even when NHN's dates are the same.
func TestCertificateIDChangeIsARotation(t *testing.T) {
	old := &certInfo{ID: "7", FileCreationDate: "2026-01-01", ExpirationDate: "2027-01-01"}
	same := *old
	require.False(t, describesAnotherFile(&same, old))
	other := same
	other.ID = "8"
	require.True(t, describesAnotherFile(&other, old))
	noID := same
	noID.ID = ""
	require.False(t, describesAnotherFile(&noID, old), "an answer without the ID says nothing of it")
	require.False(t, describesAnotherFile(old, &noID))

	for raw, want := range map[string]int64{"7": 7, "9007199254740993": 9007199254740993} {
		id, ok := (&certInfo{ID: json.Number(raw)}).CertificateID()
		require.True(t, ok)
		require.Equal(t, want, id)
	}
	for _, raw := range []string{"", "1.5", "1e3", "-"} {
		_, ok := (&certInfo{ID: json.Number(raw)}).CertificateID()
		require.False(t, ok, raw)
	}
	var nilInfo *certInfo
	_, ok := nilInfo.CertificateID()
	require.False(t, ok)
}
