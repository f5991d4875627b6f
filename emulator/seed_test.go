package emulator

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

// TestSeedListed checks what Seed(10000) makes; how long it takes is
// BenchmarkSeed10000's business (a wall-clock bound here would trip on a
// loaded machine under -race).
func TestSeedListed(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.s.Seed("bulk", 10000))

	tok := e.token()
	l := e.v13(tok, "?all=true").list(t)
	require.Equal(t, 10000, l.Body.TotalCount)
	require.Len(t, l.Body.Data, 10000)
	require.Equal(t, "bulk00000.example.com", l.Body.Data[0]["certificateName"])
	require.Equal(t, "bulk09999.example.com", l.Body.Data[9999]["certificateName"])
	a, b := l.Body.Data[1], l.Body.Data[2]
	require.NotEqual(t, a["expirationDate"], b["expirationDate"])
	require.NotEqual(t, a["fileCreationDate"], b["fileCreationDate"])
	require.Equal(t, []any{"bulk00001.example.com"}, a["domains"])
	require.Equal(t, 1000, e.v13(tok, "?pageSize=10&pageNum=7").list(t).Body.TotalPage)

	// Leaves are made on first download, stable afterwards, sharing one key.
	f1 := e.v13(tok, "/bulk00042.example.com/files").body
	leaf1, _, key1 := splitFile(t, f1)
	require.Equal(t, "bulk00042.example.com", leaf1.Subject.CommonName)
	require.Equal(t, []string{"bulk00042.example.com"}, leaf1.DNSNames)
	testkit.RequireKeyPEMMatches(t, key1, leaf1)
	require.Equal(t, l.Body.Data[42]["expirationDate"], leaf1.NotAfter.UTC().Format("2006-01-02"))
	require.Equal(t, f1, e.v13(tok, "/bulk00042.example.com/files").body)
	leaf2, _, key2 := splitFile(t, e.v11("/bulk00043.example.com/files").body)
	require.NotEqual(t, leaf1.SerialNumber, leaf2.SerialNumber)
	require.Equal(t, key1, key2)

	// Rotating a seeded certificate gives it its own key.
	nc, err := e.s.Rotate("bulk00043.example.com")
	require.NoError(t, err)
	require.NotEqual(t, key2, nc.KeyPEM)

	require.Error(t, e.s.Seed("x", -1))
}

// BenchmarkSeed10000 reports how long Seed(10000) takes on a fresh server,
// including making the shared CA and key on first use: what a demo or a test
// pays for a 10,000-certificate store (leaves are made later, on first
// download). TestSeedListed checks what it makes.
func BenchmarkSeed10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := New(Options{})
		if err := s.Seed("bulk", 10000); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSeedDemo(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.s.SeedDemo())
	tok := e.token()
	require.Equal(t, []string{"*.example.com", "api.example.com", "ed25519.example.com", "example.com", "example.com (new)", "웹 서버 인증서"}, names(e.v13(tok, "").list(t)))
	require.Equal(t, []string{"expired.example.com"}, names(e.v13(tok, "?status=expired").list(t)))

	ca, err := e.s.SharedCA(1)
	require.NoError(t, err)
	wantKey := map[string]string{
		"example.com": "RSA PRIVATE KEY", "*.example.com": "EC PRIVATE KEY", "api.example.com": "PRIVATE KEY",
		"ed25519.example.com": "PRIVATE KEY", "expired.example.com": "EC PRIVATE KEY",
		"example.com (new)": "EC PRIVATE KEY", "웹 서버 인증서": "EC PRIVATE KEY",
	}
	for name, keyBlock := range wantKey {
		body := e.v13(tok, "/"+url.PathEscape(name)+"/files").body
		leaf, certs, key := splitFile(t, body)
		testkit.RequireKeyPEMMatches(t, key, leaf)
		require.Contains(t, string(key), "BEGIN "+keyBlock+"-----", name)
		require.NoError(t, leaf.CheckSignatureFrom(ca.Intermediates[0]), name)
		switch name {
		case "example.com":
			blocks := testkit.RequirePEMBlocks(t, body)
			require.Equal(t, "CERTIFICATE", blocks[0].Type)
			require.NotEqual(t, leaf.Raw, blocks[0].Bytes, "shuffled: the leaf is not first")
			require.Equal(t, "CERTIFICATE", blocks[2].Type, "shuffled: the key is not last")
		case "api.example.com", "웹 서버 인증서":
			require.Len(t, certs, 3, "root included")
			if name == "웹 서버 인증서" {
				require.Equal(t, "www.example.com", leaf.Subject.CommonName, "the name is not the CN")
			}
		case "example.com (new)":
			require.Equal(t, "example.com", leaf.Subject.CommonName, "the name is not the CN")
			require.Len(t, certs, 2)
		case "*.example.com":
			require.Equal(t, []string{"*.example.com", "example.com"}, leaf.DNSNames)
		case "expired.example.com":
			require.True(t, leaf.NotAfter.Before(time.Now().Add(-9*24*time.Hour)))
		default:
			require.Len(t, certs, 2)
		}
	}
	var m map[string]any
	l := e.v13(tok, "?status=all&all=true")
	require.NoError(t, json.Unmarshal(l.body, &m))
	require.Equal(t, float64(7), m["body"].(map[string]any)["totalCount"])
}
