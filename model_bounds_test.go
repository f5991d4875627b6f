package nhncert

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/youmark/pkcs8"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/internal/fixture"
)

// The model's bound steps, drawn from their own stream (boundRnd) so that
// the other steps' histories, and the regression seeds, stay as they were.
// In the contract's words:
//
//	I14 The list bound: "NHN's answers for one list may add up to at most
//	    64 MiB and 100,000 certificates; past that the list is an error
//	    that names the bound, and nothing of it is kept." The model's
//	    clients hold a bound lowered to modelListBound certificates (the
//	    figure, not the rule, is lowered); while NHN holds more, every
//	    list (several at once) is that error, a background run stores
//	    nothing new, the metrics keep showing the last list that held
//	    (I10), and reads by name go on being served (I1, I2).
//	I15 The KDF bound: "key derivation parameters whose work exceeds what
//	    about a second allows (scrypt N x r x p, PBKDF2 iterations) are
//	    refused with an error naming the scheme and the bound. A file that
//	    cannot be opened with the passphrase set is refused again, without
//	    downloading and deriving again, until the passphrase or the file
//	    ... changes": a file whose key asks for 1,000,000 PBKDF2
//	    iterations is refused naming PBKDF2 and the bound, a second read
//	    does not download it, a new passphrase downloads it once more, and
//	    nothing of it is cached.

// modelListBound is the model clients' list bound, in certificates: room
// for the model's names, not for the bulk the I14 step adds.
const modelListBound = 6

// modelHeavyName holds the file of I15 while its step runs.
const modelHeavyName = "heavy.example"

// boundSteps counts the I14 and I15 steps run, for TestModel's summary.
var boundSteps [2]atomic.Int64

// memoryOnly counts the copies a run found in memory but not in storage
// (model_test.go's run), for TestModel's summary.
var memoryOnly atomic.Int64

// boundStep runs one of the bound steps now and then.
func (m *modelRun) boundStep() {
	if m.deleted || m.boundRnd.IntN(8) != 0 {
		return
	}
	if m.boundRnd.IntN(2) == 0 {
		boundSteps[0].Add(1)
		m.listPastBound()
	} else {
		boundSteps[1].Add(1)
		m.heavyKey()
	}
}

// listPastBound is I14.
func (m *modelRun) listPastBound() {
	p := m.projects[m.active]
	if p.down {
		return
	}
	const bulk = modelListBound - 1 // with the model's names, past the bound
	if err := p.emu.Seed("bulk", bulk); err != nil {
		m.t.Fatal(err)
	}
	bulkNames := make([]string, 0, bulk)
	for _, n := range p.emu.Names() {
		if strings.HasPrefix(n, "bulk") {
			bulkNames = append(bulkNames, n)
		}
	}
	defer func() {
		for _, n := range bulkNames {
			p.emu.Remove(n)
		}
	}()
	shown := len(m.shownBy(p)) + bulk
	past := shown > modelListBound
	m.h.b.cache.gate.work.Wait()
	before := m.storedSerials()

	k := 1 + m.boundRnd.IntN(3)
	status := []string{"all", "unexpired"}[m.boundRnd.IntN(2)]
	errs := make([]error, k)
	keys := make([][]string, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.h.b.HandleRequest(context.Background(), &logical.Request{
				Operation: logical.ListOperation, Path: "certs/", Data: map[string]any{"status": status},
				Storage: m.h.storage, MountPoint: "nhncert/"})
			if err == nil && resp != nil && resp.IsError() {
				err = resp.Error()
			}
			errs[i] = err
			if err == nil && resp != nil {
				keys[i], _ = resp.Data["keys"].([]string)
			}
		}()
	}
	wg.Wait()
	m.logf("NHN holds %d more (%d shown, bound %d): %d lists status=%s: %v", bulk, shown, modelListBound, k, status, errs)
	for i, err := range errs {
		switch {
		case past && err == nil:
			m.t.Errorf("I14: a list of %d certificates, past the bound of %d, answered %d keys", shown, modelListBound, len(keys[i]))
		case past && !strings.Contains(err.Error(), "the bound of one list"):
			m.t.Errorf("I14: a list past the bound answered an error that does not name the bound: %v", err)
		case !past && err == nil:
			m.recordListed(status, keys[i])
		}
	}

	// A background run while NHN holds too many: nothing of its list is
	// kept, so nothing new is stored.
	sess := mustSession(m.h)
	m.h.b.refresher.pace = func(ctx context.Context, _ <-chan struct{}, _ time.Duration) pauseResult {
		if ctx.Err() != nil {
			return pauseEnd
		}
		return paused
	}
	_, _, err := m.h.b.refreshRun(context.Background(), m.h.storage, sess, time.Now().Add(sess.cfg.RefreshInterval))
	m.logf("run while past the bound: err=%v", err)
	if past {
		m.h.b.cache.gate.work.Wait()
		after := m.storedSerials()
		for n, s := range after {
			if before[n] != s {
				m.t.Errorf("I14: a run whose list was past the bound stored %s (file %s, was %q)", n, s, before[n])
			}
		}
	} else if err == nil && p.emu.Latency() == 0 && !p.unlisted {
		m.recordListed("all", append(m.shownBy(p), bulkNames...))
	}

	// Reads by name are not lists: they go on.
	name := modelNames[m.boundRnd.IntN(len(modelNames))]
	m.checkRead(m.read(name, false), m.active)
}

// storedSerials is name -> a digest of every stored copy's file.
func (m *modelRun) storedSerials() map[string]string {
	out := map[string]string{}
	for _, k := range m.h.cacheKeys() {
		se, err := readStoredEntryAt(context.Background(), m.h.storage, cacheStoragePrefix+k)
		if err != nil || se == nil {
			continue
		}
		sum := sha256.Sum256(se.File)
		out[se.Name] = hex.EncodeToString(sum[:8])
	}
	return out
}

// heavyKey is I15.
func (m *modelRun) heavyKey() {
	p := m.projects[m.active]
	if p.down || p.emu.Latency() > 0 {
		return
	}
	p.emu.Put(emulator.Certificate{
		Name: modelHeavyName, Authority: "NHN", Domains: []string{modelHeavyName}, SignatureAlgorithm: "SHA256withECDSA",
		FileCreationDate: time.Now().UTC().Format("2006-01-02"), ExpirationDate: time.Now().AddDate(0, 3, 0).UTC().Format("2006-01-02"),
		File: heavyFile(m.t),
	})
	defer func() {
		p.emu.Remove(modelHeavyName)
		if _, err := m.h.request(logical.DeleteOperation, "passphrases/"+modelHeavyName, nil); err != nil {
			m.t.Errorf("passphrase delete: %v", err)
		}
	}()
	sess := mustSession(m.h)
	downloads := func() int64 { return m.countsOf(sess.client).filesFor(modelHeavyName) }
	refused := func(when string) {
		err := m.readErr(modelHeavyName)
		switch {
		case err == nil:
			m.t.Errorf("I15: %s: a key asking for 1,000,000 PBKDF2 iterations was served", when)
		case !strings.Contains(err.Error(), "PBKDF2") || !strings.Contains(err.Error(), "at most 600000 iterations"):
			m.t.Errorf("I15: %s: the refusal does not name the scheme and the bound: %v", when, err)
		}
	}
	for i, pass := range []string{"model-pass", "model-pass-2"} {
		if _, err := m.h.request(logical.UpdateOperation, "passphrases/"+modelHeavyName, map[string]any{"passphrase": pass}); err != nil {
			m.t.Fatalf("passphrase write: %v", err)
		}
		// A download NHN answered 401 (its tokens were revoked) is sent
		// once more with a new token: that is one download.
		n := m.countsOf(sess.client)
		base, rejected := downloads(), n.rejectedFiles.Load()
		once := func() int64 { return downloads() - base - (n.rejectedFiles.Load() - rejected) }
		refused("first read")
		if d := once(); d != 1 {
			m.t.Errorf("I15: passphrase %d: the first read downloaded %d times", i+1, d)
		}
		refused("second read")
		if d := once(); d != 1 {
			m.t.Errorf("I15: passphrase %d: a second read of a refused file downloaded again (%d downloads in all)", i+1, d)
		}
	}
	m.h.b.cache.gate.work.Wait()
	if slices.Contains(m.h.cacheKeys(), modelHeavyName) {
		m.t.Errorf("I15: the refused file is stored")
	}
	m.logf("%s: a 1,000,000-iteration key refused, %d downloads for 4 reads and 2 passphrases", modelHeavyName, downloads())
}

func (m *modelRun) readErr(name string) error {
	r := m.read(name, false)
	return r.err
}

var heavy struct {
	once sync.Once
	file []byte
	err  error
}

// heavyFile is a leaf and its key under PKCS#8 PBES2 with 1,000,000
// PBKDF2 iterations (past the bound of 600,000), made once.
func heavyFile(t *testing.T) []byte {
	heavy.once.Do(func() {
		fx := fixture.LoadBundle(t)
		ec := fx.Chains[emulator.EC]
		b, _ := pem.Decode(ec.KeyPEM)
		key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			key, err = x509.ParseECPrivateKey(b.Bytes)
		}
		if err != nil {
			heavy.err = err
			return
		}
		der, err := pkcs8.MarshalPrivateKey(key, []byte("model-pass"), &pkcs8.Opts{
			Cipher:  pkcs8.AES256CBC,
			KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 1_000_000, HMACHash: crypto.SHA256},
		})
		if err != nil {
			heavy.err = err
			return
		}
		heavy.file = append(append([]byte(nil), ec.LeafPEM...), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})...)
	})
	if heavy.err != nil {
		t.Fatalf("heavy file: %v", heavy.err)
	}
	return heavy.file
}
