package nhn

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// CONTRACT: "NHN's answers for one list may add up to at most 64 MiB and
// 100,000 certificates; past that the list is an error that names the
// bound". The bounds are lowered here to what the emulator holds.
func TestListBound(t *testing.T) {
	ch := newClientHarness(t, V13, func(o *emulator.Options) { o.MaxPageSize = 10 })
	require.NoError(t, ch.emu.Seed("b", 30))
	require.Equal(t, listBound{bytes: 64 << 20, certs: 100_000}, ch.c.listBound, "the contract's figures")

	infos, err := ch.c.ListCertificates(context.Background(), "ALL")
	require.NoError(t, err)
	require.Len(t, infos, 30)

	ch.c.listBound = listBound{bytes: 64 << 20, certs: 25}
	_, err = ch.c.ListCertificates(context.Background(), "ALL")
	require.ErrorContains(t, err, "exceed 25 certificates, the bound of one list")

	ch.c.listBound = listBound{bytes: 3000, certs: 100_000}
	_, err = ch.c.ListCertificates(context.Background(), "ALL")
	require.ErrorContains(t, err, "exceed 3000 bytes, the bound of one list")
}

// CONTRACT: "Concurrent lists with the same parameters share one walk of
// NHN's pages": five lists at once (NHN slow) cost one walk, and each
// caller gets the whole answer.
func TestConcurrentListsShareOneWalk(t *testing.T) {
	ch := newClientHarness(t, V13, func(o *emulator.Options) { o.MaxPageSize = 10 })
	require.NoError(t, ch.emu.Seed("b", 30))  // 3 pages
	ch.emu.SetLatency(300 * time.Millisecond) // well inside the harness's 2 s attempt timeout
	var wg sync.WaitGroup
	lens := make([]int, 5)
	for i := range lens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos, err := ch.c.ListCertificates(context.Background(), "ALL")
			require.NoError(t, err)
			lens[i] = len(infos)
		}()
	}
	wg.Wait()
	require.Equal(t, []int{30, 30, 30, 30, 30}, lens)
	require.EqualValues(t, 3, ch.emu.Stats().ListCalls, "pages asked of NHN by 5 concurrent lists of 3 pages")
}

// Config.ListBound can lower the bound, never raise it past the contract's.
func TestListBoundConfigLowersOnly(t *testing.T) {
	for _, c := range []struct {
		in   ListBound
		want listBound
	}{
		{ListBound{}, listBound{bytes: 64 << 20, certs: 100_000}},
		{ListBound{Bytes: 1 << 40, Certificates: 1 << 40}, listBound{bytes: 64 << 20, certs: 100_000}},
		{ListBound{Bytes: -1, Certificates: -1}, listBound{bytes: 64 << 20, certs: 100_000}},
		{ListBound{Bytes: 4096, Certificates: 6}, listBound{bytes: 4096, certs: 6}},
	} {
		require.Equal(t, c.want, New(Config{ListBound: c.in}).listBound, "%+v", c.in)
	}
}
