package nhncert

import (
	"encoding/pem"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/certutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// Reads of files that the reader (certfile) must choose in: the engine
// serves what it chose, and caches it.

// TestReadCrossSignedWarns: the read of such a file serves the chain to
// the root the file holds and says, in the response's warnings, what was
// left out.
func TestReadCrossSignedWarns(t *testing.T) {
	p := fixture.NewCrossSigned(t)
	h := newHarness(t)
	h.configure(nil)
	h.emu.Put(emulator.Certificate{Name: "cross.example.com", File: p.File(t, p.Leaf, p.InterOld, p.InterNew, p.NewRoot), ExpirationDate: "2999-01-01"})
	resp := h.read("cross.example.com", nil)
	chain := resp.Data["ca_chain"].([]string)
	require.Len(t, chain, 2)
	require.Equal(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.InterNew.Raw})), chain[0]+"\n")
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "the file holds 1 certificate(s) outside the served chain; they are left out: CN=Intermediate issued by CN=Old Root")
	_, err := h.request(logical.ReadOperation, "certs/cross.example.com", nil)
	require.NoError(t, err)
}

// TestReadServesTheRenewedLeafAndCachesIt: a file holding an expired leaf
// before its renewal serves the renewal, and the copy is fresh: the second
// read does not download again.
func TestReadServesTheRenewedLeafAndCachesIt(t *testing.T) {
	p := fixture.NewExpiringPKI(t)
	h := newHarness(t)
	h.configure(nil)
	h.emu.Put(emulator.Certificate{Name: "expiry.example.com",
		File:           p.File(t, p.LeafExpired, p.LeafValid, p.InterExpired, p.InterValid, p.Root),
		ExpirationDate: p.LeafValid.NotAfter.UTC().Format("2006-01-02")})
	for range 3 {
		d := h.read("expiry.example.com", nil).Data
		require.Equal(t, p.LeafValid.NotAfter.UTC().Format(time.RFC3339), d["not_after"])
		require.Equal(t, certutil.GetHexFormatted(p.LeafValid.SerialNumber.Bytes(), ":"), d["serial_number"])
		require.Equal(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.InterValid.Raw})), d["issuing_ca"].(string)+"\n")
	}
	require.EqualValues(t, 1, h.fileCalls("expiry.example.com"), "a fresh copy is not downloaded again")
}
