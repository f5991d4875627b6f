package emulator

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/testkit"
)

func TestRotate(t *testing.T) {
	e := newEnv(t)
	ca := sharedTestCA(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "r.example.com", DNSNames: []string{"r.example.com", "s.example.com"}, KeyType: ECPKCS8, CA: ca,
		NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-10 * 24 * time.Hour)})
	require.NoError(t, err)
	e.s.PutChain("r.example.com", ch, FileOptions{IncludeRoot: true})
	tok := e.token()
	old := e.v13(tok, "/r.example.com/files").body

	e.clock.Advance(48 * time.Hour) // "today" moves
	nc, err := e.s.Rotate("r.example.com")
	require.NoError(t, err)
	require.NotEqual(t, ch.Leaf.SerialNumber, nc.Leaf.SerialNumber)
	require.False(t, testkit.PublicKeyMatches(nc.Key, ch.Leaf), "new key")
	require.Equal(t, ch.Leaf.DNSNames, nc.Leaf.DNSNames)
	require.Equal(t, "r.example.com", nc.Leaf.Subject.CommonName)
	require.Equal(t, ECPKCS8, nc.KeyType)
	require.Same(t, ca, nc.CA)
	require.NoError(t, nc.Leaf.CheckSignatureFrom(ca.Intermediates[0]))
	require.Equal(t, 90*24*time.Hour, nc.Leaf.NotAfter.Sub(nc.Leaf.NotBefore), "same validity length")

	tok = e.token() // the old one expired with the clock
	body := e.v13(tok, "/r.example.com/files").body
	require.NotEqual(t, old, body)
	leaf, certs, key := splitFile(t, body)
	require.Equal(t, nc.Leaf.Raw, leaf.Raw)
	require.Len(t, certs, 3, "same file layout (root included)")
	testkit.RequireKeyPEMMatches(t, key, leaf)
	c, _ := e.s.Get("r.example.com")
	require.Equal(t, e.clock.Now().UTC().Format("2006-01-02"), c.FileCreationDate)
	require.Equal(t, nc.Leaf.NotAfter.UTC().Format("2006-01-02"), c.ExpirationDate)

	// A file put with Put: rotated from what the file says.
	e.s.Put(Certificate{Name: "plain", File: ch.PEMFile(FileOptions{KeyFirst: true}), FileName: "plain.crt"})
	pc, err := e.s.Rotate("plain")
	require.NoError(t, err)
	require.Equal(t, ECPKCS8, pc.KeyType)
	require.Equal(t, ch.Leaf.DNSNames, pc.Leaf.DNSNames)
	pcert, _ := e.s.Get("plain")
	require.Equal(t, "plain.crt", pcert.FileName)

	_, err = e.s.Rotate("nope")
	require.True(t, errors.Is(err, ErrNotFound))
}

// A certificate made today and rotated today gets another expirationDate
// in the list: a renewal outlives what it replaces, so NHN's list (dates
// only) shows the rotation, as it does for a real renewal.
func TestRotateSameDayChangesListedExpiry(t *testing.T) {
	e := newEnv(t)
	ch, err := GenerateChain(ChainOptions{CommonName: "today.example.com", CA: sharedTestCA(t),
		NotBefore: e.clock.Now().Add(-time.Hour), NotAfter: e.clock.Now().Add(90 * day)})
	require.NoError(t, err)
	e.s.PutChain("today.example.com", ch, FileOptions{})
	before, _ := e.s.Get("today.example.com")
	nc, err := e.s.Rotate("today.example.com")
	require.NoError(t, err)
	after, _ := e.s.Get("today.example.com")
	require.Equal(t, before.FileCreationDate, after.FileCreationDate, "same day")
	require.NotEqual(t, before.ExpirationDate, after.ExpirationDate)
	require.Equal(t, nc.Leaf.NotAfter.UTC().Format("2006-01-02"), after.ExpirationDate)
}
