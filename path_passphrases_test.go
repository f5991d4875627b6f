package nhncert

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// passphraseValue is the passphrase the tests write; it must appear in no
// answer, log line, event or metric.
const passphraseValue = "tr0ub4dor & 3 — 비밀"

// writePassphrase writes name's passphrase and requires success.
func (h *harness) writePassphrase(name, pass string) {
	h.t.Helper()
	resp, err := h.request(logical.UpdateOperation, "passphrases/"+name, map[string]any{"passphrase": pass})
	require.NoError(h.t, err)
	require.False(h.t, resp != nil && resp.IsError(), "write passphrases/%s: %v", name, resp)
}

// readErr reads certs/<name> and returns the error it answers.
func (h *harness) readErr(name string, data map[string]any) error {
	h.t.Helper()
	resp, err := h.request(logical.ReadOperation, "certs/"+name, data)
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	require.Error(h.t, err, "read %s succeeded", name)
	return err
}

// requireNoPassphrase fails when s holds the passphrase.
func requireNoPassphrase(t *testing.T, what, s string) {
	t.Helper()
	require.NotContains(t, s, passphraseValue, "%s holds the passphrase", what)
	require.NotContains(t, s, base64.StdEncoding.EncodeToString([]byte(passphraseValue)), "%s holds the passphrase (base64)", what)
}

// parseKeyBlock reads a private key block in the encoding its label names.
func parseKeyBlock(b *pem.Block) (any, error) {
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	default:
		return x509.ParsePKCS8PrivateKey(b.Bytes)
	}
}

func samePublicKey(t *testing.T, want crypto.Signer, got any, msg string) {
	t.Helper()
	k, ok := got.(crypto.Signer)
	require.True(t, ok, "%s: %T is no private key", msg, got)
	require.True(t, k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want.Public()), "%s: the key is not the leaf's", msg)
}

func TestPassphrasePathNeverAnswersThePassphrase(t *testing.T) {
	h := configuredHarness(t, nil)
	_, err := h.request(logical.ReadOperation, "passphrases/example.com", nil)
	require.NoError(t, err)

	before := time.Now().Add(-time.Second)
	for _, name := range []string{"example.com", "*.example.com", "example.com (new)", "웹 서버 인증서"} {
		h.writePassphrase(name, passphraseValue)
	}
	resp := h.readPath("passphrases/example.com", nil)
	require.Equal(t, []string{"set", "updated_at"}, slices.Sorted(maps.Keys(resp.Data)))
	require.Equal(t, true, resp.Data["set"])
	at, err := time.Parse(time.RFC3339, resp.Data["updated_at"].(string))
	require.NoError(t, err)
	require.False(t, at.Before(before.Truncate(time.Second)))

	list, err := h.request(logical.ListOperation, "passphrases/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"*.example.com", "example.com", "example.com (new)", "웹 서버 인증서"}, list.Data["keys"])

	// Stored seal-wrapped, under a hashed key.
	h.requireSealWrapped(passphraseKey("example.com"))
	require.Contains(t, h.b.PathsSpecial.SealWrapStorage, passphraseStoragePrefix)

	// Names follow certs/<name>'s rules; a passphrase is required.
	for _, name := range []string{"a/b", "..", `a\b`, "a\x01b", strings.Repeat("x", maxNameLength+1)} {
		r, err := h.request(logical.UpdateOperation, "passphrases/"+name, map[string]any{"passphrase": "x"})
		require.NoError(t, err)
		require.True(t, r.IsError(), "%q accepted", name)
	}
	for _, data := range []map[string]any{nil, {"passphrase": ""}, {"passphrase": strings.Repeat("p", maxPassphraseLength+1)}} {
		r, err := h.request(logical.UpdateOperation, "passphrases/other.example.com", data)
		require.NoError(t, err)
		require.True(t, r.IsError(), "%v accepted", data)
		requireNoPassphrase(t, "an error", r.Error().Error())
	}
	_, err = h.request(logical.ReadOperation, "passphrases/other.example.com", nil)
	require.NoError(t, err)

	// Delete: a 404 after, and no longer listed.
	_, err = h.request(logical.DeleteOperation, "passphrases/example.com", nil)
	require.NoError(t, err)
	r, err := h.request(logical.ReadOperation, "passphrases/example.com", nil)
	require.NoError(t, err)
	require.Nil(t, r, "a deleted passphrase reads as 404")
	list, err = h.request(logical.ListOperation, "passphrases/", nil)
	require.NoError(t, err)
	require.NotContains(t, list.Data["keys"], "example.com")

	// Nowhere: not in the log, the events, the metrics.
	requireNoPassphrase(t, "the log", h.logs.String())
	requireNoPassphrase(t, "the events", stringify(h.events.sent()))
	_, text := scrape(t, h)
	requireNoPassphrase(t, "the metrics", text)
}

func TestEncryptedCertificateServedWithItsPassphrase(t *testing.T) {
	fx := fixture.LoadBundle(t)
	for _, tc := range []struct {
		name  string
		kt    emulator.KeyType
		enc   emulator.KeyEncryption
		label string // the served key's form: the one inside the encryption
	}{
		{"legacy-rsa.example.com", emulator.RSA, emulator.KeyLegacy, "RSA PRIVATE KEY"},
		{"legacy-ec.example.com", emulator.EC, emulator.KeyLegacy, "EC PRIVATE KEY"},
		{"pkcs8-ec.example.com", emulator.EC, emulator.KeyPKCS8, "PRIVATE KEY"},
		{"pkcs8-ed25519.example.com", emulator.Ed25519, emulator.KeyPKCS8, "PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := configuredHarness(t, nil)
			ch := fx.Chains[tc.kt]
			h.emu.PutChain(tc.name, ch, emulator.FileOptions{KeyPassphrase: passphraseValue, KeyEncryption: tc.enc})
			h.putChain("plain.example.com", emulator.ChainOptions{CA: fx.CA}, emulator.FileOptions{})

			// No passphrase: refused, naming the path to write.
			err := h.readErr(tc.name, nil)
			require.Equal(t, http.StatusBadGateway, logicalCode(err))
			require.Contains(t, err.Error(), "no passphrase is set")
			require.Contains(t, err.Error(), `"nhncert/passphrases/`+tc.name+`"`)
			require.Empty(t, h.cacheKeys(), "nothing cached")

			// A wrong one: refused, saying so.
			h.writePassphrase(tc.name, "not the passphrase")
			err = h.readErr(tc.name, nil)
			require.Contains(t, err.Error(), "does not decrypt the private key")
			require.NotContains(t, err.Error(), "not the passphrase")
			require.Empty(t, h.cacheKeys(), "nothing cached")

			// The right one: served decrypted, in every format.
			h.writePassphrase(tc.name, passphraseValue)
			d := h.read(tc.name, nil).Data
			kb, _ := pem.Decode([]byte(d["private_key"].(string)))
			require.NotNil(t, kb)
			require.Equal(t, tc.label, kb.Type)
			require.Empty(t, kb.Headers)
			k, err := parseKeyBlock(kb)
			require.NoError(t, err)
			samePublicKey(t, ch.Key, k, "pem")
			require.Equal(t, emulator.FormatSerial(ch.Leaf.SerialNumber), d["serial_number"])
			require.Equal(t, fixture.KeyTypeWant[tc.kt], d["private_key_type"])

			p8 := h.read(tc.name, map[string]any{"private_key_format": "pkcs8"}).Data
			kb, _ = pem.Decode([]byte(p8["private_key"].(string)))
			require.Equal(t, "PRIVATE KEY", kb.Type)
			key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
			require.NoError(t, err)
			samePublicKey(t, ch.Key, key, "pkcs8")

			der := h.read(tc.name, map[string]any{"format": "der"}).Data
			raw, err := base64.StdEncoding.DecodeString(der["private_key"].(string))
			require.NoError(t, err)
			k, err = parseKeyBlock(&pem.Block{Type: tc.label, Bytes: raw})
			require.NoError(t, err)
			samePublicKey(t, ch.Key, k, "der")

			bundle := h.read(tc.name, map[string]any{"format": "pem_bundle"}).Data["certificate"].(string)
			bb, _ := pem.Decode([]byte(bundle))
			require.Equal(t, tc.label, bb.Type, "pem_bundle starts with the key")
			require.NotContains(t, bundle, "ENCRYPTED")

			p12 := h.read(tc.name, map[string]any{"format": "pkcs12_bundle"}).Data["certificate"].(string)
			p12DER, err := base64.StdEncoding.DecodeString(p12)
			require.NoError(t, err)
			pk, leaf, _, err := pkcs12.DecodeChain(p12DER, defaultKeystorePassword)
			require.NoError(t, err)
			samePublicKey(t, ch.Key, pk, "pkcs12_bundle")
			require.True(t, leaf.Equal(ch.Leaf))

			jks := h.read(tc.name, map[string]any{"format": "jks_bundle"}).Data["certificate"].(string)
			jksBytes, err := base64.StdEncoding.DecodeString(jks)
			require.NoError(t, err)
			ks := keystore.New()
			require.NoError(t, ks.Load(strings.NewReader(string(jksBytes)), []byte(defaultKeystorePassword)))
			entry, err := ks.GetPrivateKeyEntry(defaultJKSAlias, []byte(defaultKeystorePassword))
			require.NoError(t, err)
			jk, err := x509.ParsePKCS8PrivateKey(entry.PrivateKey)
			require.NoError(t, err)
			samePublicKey(t, ch.Key, jk, "jks_bundle")

			// metadata says the key was encrypted upstream; a plain file's
			// does not.
			require.Equal(t, true, h.readPath("metadata/"+tc.name, nil).Data["private_key_encrypted_upstream"])
			require.Equal(t, false, h.readPath("metadata/plain.example.com", nil).Data["private_key_encrypted_upstream"])

			// Cached: the stored entry holds the file as NHN sent it (the
			// key still encrypted) and never the passphrase; a restarted
			// backend decrypts it again without downloading.
			calls := h.fileCalls(tc.name)
			se, err := readStoredEntry(context.Background(), h.storage, tc.name)
			require.NoError(t, err)
			require.NotNil(t, se)
			requireNoPassphrase(t, "the cache entry", string(se.File)+stringify(se))
			stored, err := h.storage.Get(context.Background(), storageKey(tc.name))
			require.NoError(t, err)
			requireNoPassphrase(t, "the stored cache entry", string(stored.Value))
			require.NotContains(t, string(se.File), string(ch.KeyPEM), "the stored file holds the key encrypted")
			h.b = h.newBackend(h.storage)
			h.noRetryWait()
			again := h.read(tc.name, nil).Data
			require.Equal(t, d["private_key"], again["private_key"])
			require.Equal(t, calls, h.fileCalls(tc.name), "served from storage, decrypted again")

			requireNoPassphrase(t, "the log", h.logs.String())
			requireNoPassphrase(t, "the events", stringify(h.events.sent()))
		})
	}
}

// logicalCode is the HTTP status a coded error carries (0 if none).
func logicalCode(err error) int {
	if ce, ok := err.(logical.HTTPCodedError); ok {
		return ce.Code()
	}
	return 0
}

func TestPassphraseChangeDropsTheCachedCopy(t *testing.T) {
	fx := fixture.LoadBundle(t)
	h := configuredHarness(t, nil)
	const name = "enc.example.com"
	h.emu.PutChain(name, fx.Chains[emulator.EC], emulator.FileOptions{KeyPassphrase: passphraseValue})
	h.writePassphrase(name, passphraseValue)
	h.read(name, nil)
	require.EqualValues(t, 1, h.fileCalls(name))
	require.Equal(t, []string{nameHash(name)}, h.cacheKeys())
	h.read(name, nil)
	require.EqualValues(t, 1, h.fileCalls(name), "cached")

	// Writing it again (the same or another) drops the copy, memory and
	// storage: the next read downloads and decrypts anew.
	h.writePassphrase(name, passphraseValue)
	require.Empty(t, h.cacheKeys())
	require.Zero(t, h.b.cache.memoryLen())
	h.read(name, nil)
	require.EqualValues(t, 2, h.fileCalls(name))

	// Deleting it drops the copy too: the read is refused again.
	_, err := h.request(logical.DeleteOperation, "passphrases/"+name, nil)
	require.NoError(t, err)
	require.Empty(t, h.cacheKeys())
	require.Contains(t, h.readErr(name, nil).Error(), "no passphrase is set")
	require.EqualValues(t, 3, h.fileCalls(name))

	// A download that began before a passphrase change and ends after it
	// does not store what it decrypted with the old one.
	h.writePassphrase(name, passphraseValue)
	sess := mustSession(h)
	upstream, _ := h.emu.Get(name)
	e, err := newEntry(name, sess.cfg.Generation, upstream.File, time.Now(), passphraseOf(context.Background(), h.storage, name))
	require.NoError(t, err)
	e.passphraseEpoch = h.b.cache.passphraseEpoch.Load()
	h.writePassphrase(name, passphraseValue)
	kept, err := h.b.cache.keep(context.Background(), h.storage, e, true, nil)
	require.NoError(t, err)
	require.Same(t, e, kept, "served to its read")
	require.Empty(t, h.cacheKeys(), "not stored")
	require.Zero(t, h.b.cache.memoryLen(), "not kept in memory")
}

func TestRefusedFileIsNotCached(t *testing.T) {
	fx := fixture.LoadBundle(t)
	h := configuredHarness(t, nil)
	const name = "enc.example.com"
	h.emu.PutChain(name, fx.Chains[emulator.EC], emulator.FileOptions{KeyPassphrase: passphraseValue})

	// A file whose key cannot be opened is refused again, without
	// downloading and deriving again, until the passphrase or the file
	// (as NHN's list shows it) changes, or cache_ttl passes (CONTRACT,
	// passphrases): each read gives the same error, one download in all.
	const reads = 3
	for range reads {
		require.Contains(t, h.readErr(name, nil).Error(), "no passphrase is set")
	}
	require.EqualValues(t, 1, h.fileCalls(name), "downloads of a refused file by %d reads", reads)
	h.writePassphrase(name, "wrong")
	for range reads {
		require.Contains(t, h.readErr(name, nil).Error(), "does not decrypt")
	}
	require.EqualValues(t, 2, h.fileCalls(name), "a new passphrase: one more download, then none")
	require.Empty(t, h.cacheKeys(), "nothing cached")
	require.Zero(t, h.b.cache.memoryLen(), "nothing cached")

	// The file re-uploaded without a passphrase on the same day (NHN's
	// list cannot tell): refresh=true asks NHN and serves it.
	h.emu.PutChain(name, fx.Chains[emulator.EC], emulator.FileOptions{})
	h.read(name, map[string]any{"refresh": true})
	require.Equal(t, false, h.readPath("metadata/"+name, nil).Data["private_key_encrypted_upstream"])
}

func TestBackgroundRefreshDoesNotLoopOnAnEncryptedRotation(t *testing.T) {
	fx := fixture.LoadBundle(t)
	h := configuredHarness(t, nil)
	const name = "rotated.example.com"
	h.emu.PutChain(name, fx.Chains[emulator.EC], emulator.FileOptions{})
	first := h.read(name, nil).Data
	h.learnList()
	base := h.fileCalls(name)

	// Re-uploaded with a passphrase (another day, another file): every run
	// sees the rotation in the list; the first downloads it and refuses
	// the key, the others do not download it again.
	next, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name, KeyType: emulator.EC, CA: fx.CA})
	require.NoError(t, err)
	h.emu.PutChain(name, next, emulator.FileOptions{KeyPassphrase: passphraseValue})
	h.relist(name, "2099-01-01")
	const runs = 6
	var deferred []int
	for range runs {
		stats, _ := h.runErr()
		deferred = append(deferred, stats.deferred)
	}
	t.Logf("downloads of %s across %d runs: %d", name, runs, h.fileCalls(name)-base)
	require.EqualValues(t, base+1, h.fileCalls(name), "downloads of %s across %d runs", name, runs)
	require.Equal(t, []int{0, 1, 1, 1, 1, 1}, deferred, "each run after the first leaves the refused name for later")

	// Reads serve the copy held; once it is past cache_ttl, with a warning
	// that says what to write, still without downloading: the refusal
	// holds until the passphrase or the file changes, or cache_ttl passes
	// since the refusal.
	resp := h.read(name, nil)
	require.Equal(t, first["serial_number"], resp.Data["serial_number"])
	require.EqualValues(t, base+1, h.fileCalls(name))
	h.age(name, 2*time.Hour)
	h.b.cache.forgetMemory(name)
	resp = h.read(name, nil)
	require.Equal(t, first["serial_number"], resp.Data["serial_number"])
	require.Contains(t, strings.Join(resp.Warnings, "\n"), `"nhncert/passphrases/rotated.example.com"`)
	require.EqualValues(t, base+1, h.fileCalls(name), "a read of a file refused lately asks NHN")

	// The passphrase written: the rotation is served.
	h.writePassphrase(name, passphraseValue)
	got := h.read(name, nil).Data
	require.Equal(t, emulator.FormatSerial(next.Leaf.SerialNumber), got["serial_number"])
	require.EqualValues(t, base+2, h.fileCalls(name))
	for range 3 {
		h.run()
	}
	require.EqualValues(t, base+2, h.fileCalls(name), "nothing more to download")
	requireNoPassphrase(t, "the log", h.logs.String())
}

func TestRefusalsEndWithTheFileOrTheirTTL(t *testing.T) {
	var r refusedFiles
	now := time.Now()
	listed := &certInfo{Name: "x", FileCreationDate: "2026-01-01", ExpirationDate: "2027-01-01"}
	r.note("g", "x", listed, now, errFileRefused)
	_, ok := r.lookup("g", "x", listed, now.Add(time.Minute), time.Hour)
	require.True(t, ok, "same file, within ttl")
	_, ok = r.lookup("other", "x", listed, now, time.Hour)
	require.False(t, ok, "another config generation")
	_, ok = r.lookup("g", "x", listed, now.Add(time.Hour), time.Hour)
	require.False(t, ok, "past ttl")
	r.note("g", "x", listed, now, errFileRefused)
	changed := *listed
	changed.FileCreationDate = "2026-02-01"
	_, ok = r.lookup("g", "x", &changed, now, time.Hour)
	require.False(t, ok, "the list shows another file")
	r.note("g", "x", nil, now, errFileRefused)
	_, ok = r.lookup("g", "x", nil, now, time.Hour)
	require.True(t, ok, "no list yet: the same")
	_, ok = r.lookup("g", "x", listed, now, time.Hour)
	require.False(t, ok, "the first list: downloaded once more to learn it")
}

// TestPassphraseWritesRaceReads writes passphrases (a wrong one, the right
// one, a delete) while reads go on: every read answers either the key that
// matches the leaf or one of the errors that say why not, never another
// key; after the last write of the right passphrase, reads are served.
func TestPassphraseWritesRaceReads(t *testing.T) {
	fx := fixture.LoadBundle(t)
	h := configuredHarness(t, nil)
	const name = "enc.example.com"
	ch := fx.Chains[emulator.EC]
	h.emu.PutChain(name, ch, emulator.FileOptions{KeyPassphrase: passphraseValue, KeyEncryption: emulator.KeyLegacy})

	done := make(chan struct{})
	errs := make(chan error, 4)
	reader := func() error {
		for {
			select {
			case <-done:
				return nil
			default:
			}
			resp, err := h.request(logical.ReadOperation, "certs/"+name, nil)
			if err == nil && resp != nil && resp.IsError() {
				err = resp.Error()
			}
			if err != nil {
				if !strings.Contains(err.Error(), "no passphrase is set") && !strings.Contains(err.Error(), "does not decrypt") {
					return err
				}
				continue
			}
			kb, _ := pem.Decode([]byte(resp.Data["private_key"].(string)))
			if kb == nil {
				return errors.New("no PEM private_key")
			}
			k, err := parseKeyBlock(kb)
			if err != nil {
				return err
			}
			if !k.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ch.Key.Public()) {
				return errors.New("a key that is not the leaf's")
			}
		}
	}
	for range 4 {
		go func() { errs <- reader() }()
	}
	for i := range 30 {
		switch i % 3 {
		case 0:
			h.writePassphrase(name, "wrong")
		case 1:
			h.writePassphrase(name, passphraseValue)
		default:
			_, err := h.request(logical.DeleteOperation, "passphrases/"+name, nil)
			require.NoError(t, err)
		}
	}
	h.writePassphrase(name, passphraseValue)
	close(done)
	for range 4 {
		require.NoError(t, <-errs)
	}
	h.read(name, nil)
	calls := h.fileCalls(name)
	h.read(name, nil)
	require.Equal(t, calls, h.fileCalls(name), "the right passphrase's copy is cached")
}

// TestPassphraseChangeOnAnotherNode is what a standby sees when the active
// node writes a passphrase: Vault invalidates its storage key, and the
// standby drops its memory-only copy and refusals of that name (its copy
// of another name stays).
func TestPassphraseChangeOnAnotherNode(t *testing.T) {
	fx := fixture.LoadBundle(t)
	h := configuredHarness(t, nil)
	const name = "enc.example.com"
	h.emu.PutChain(name, fx.Chains[emulator.EC], emulator.FileOptions{KeyPassphrase: passphraseValue})
	h.putChain("plain.example.com", emulator.ChainOptions{CA: fx.CA}, emulator.FileOptions{})
	h.writePassphrase(name, passphraseValue)
	standby := h.newBackend(&readOnlyStorage{Storage: h.storage})
	for _, n := range []string{name, "plain.example.com"} {
		resp, err := h.requestOn(standby, &readOnlyStorage{Storage: h.storage}, logical.ReadOperation, "certs/"+n, nil)
		require.NoError(t, err)
		require.False(t, resp.IsError(), "%v", resp.Error())
	}
	require.Equal(t, 2, standby.cache.memoryLen())
	sess, err := standby.session(context.Background(), h.storage)
	require.NoError(t, err)
	standby.cache.refused.note(sess.cfg.Generation, name, nil, time.Now(), errFileRefused)

	standby.invalidate(context.Background(), passphraseKey(name))
	_, held := standby.cache.memory.Peek(name)
	require.False(t, held, "the copy decrypted with the old passphrase is dropped")
	_, held = standby.cache.memory.Peek("plain.example.com")
	require.True(t, held, "another name's copy stays")
	_, refused := standby.cache.refused.lookup(sess.cfg.Generation, name, nil, time.Now(), time.Hour)
	require.False(t, refused, "the refusal is dropped")
}
