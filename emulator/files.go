package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/pem"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// hugeSize is how large the huge fault makes a file (at least).
const hugeSize = 1 << 20

// fileOf returns a certificate's file and file name, or a result code.
func (s *Server) fileOf(name string) ([]byte, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.certs[name]
	if !ok {
		return nil, "", ResultNameNotExist
	}
	s.materializeLocked(e)
	if len(e.cert.File) == 0 {
		return nil, "", ResultFileNotExist
	}
	fn := e.cert.FileName
	if fn == "" {
		fn = e.cert.Name + ".pem"
	}
	return e.cert.File, fn, 0 // stored files are never modified in place
}

// nameOfID resolves a download by ID to the certificate's name.
func (s *Server) nameOfID(id string) (string, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byIDLocked(n)
}

func (s *Server) serveFile(w http.ResponseWriter, rt route) {
	if rt.id != "" {
		name, ok := s.nameOfID(rt.id)
		if !ok {
			writeResult(w, ResultIDNotExist)
			return
		}
		rt.name = name
	}
	file, fileName, code := s.fileOf(rt.name)
	if code != 0 {
		writeResult(w, code)
		return
	}
	if f, ok := s.takeFault(kindFiles, true); ok {
		switch f.Mode {
		case FaultRotating:
			if _, err := s.Rotate(rt.name); err == nil {
				if nf, nfn, c := s.fileOf(rt.name); c == 0 {
					file, fileName = nf, nfn
				}
			}
		case FaultBadPEM:
			file = []byte("This is not a PEM file.\x00\x01\x02\xff\xfe\r\n<html><body>certificate</body></html>\n")
		case FaultMismatch:
			file = s.mismatched(file)
		case FaultHuge:
			file = hugeFile(file)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", contentDisposition(fileName))
	w.Header().Set("Content-Length", strconv.Itoa(len(file)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(file); err == nil {
		s.mu.Lock()
		s.stats.FilesServedByName[rt.name]++
		s.mu.Unlock()
	}
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")

// contentDisposition is the header NHN's guide shows (attachment;
// filename="..."). A file name that is not plain ASCII (a Hangul
// certificate name makes one) also goes as RFC 6266's filename*, UTF-8 and
// percent-encoded, with '_' for each other character in the quoted fallback, so
// that the header itself stays ASCII.
func contentDisposition(fileName string) string {
	ascii := true
	for i := 0; i < len(fileName); i++ {
		if fileName[i] < 0x20 || fileName[i] >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return `attachment; filename="` + quoteEscaper.Replace(fileName) + `"`
	}
	fallback := strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '_'
		}
		return r
	}, fileName)
	return `attachment; filename="` + quoteEscaper.Replace(fallback) + `"; filename*=UTF-8''` + url.PathEscape(fileName)
}

// mismatched replaces the private key(s) of a file with an unrelated key of
// the same type and encoding.
func (s *Server) mismatched(file []byte) []byte {
	var out []byte
	replaced := false
	for b := range pemBlocks(file) {
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			kt, ok := keyTypeOfPEM(b)
			if !ok {
				kt = EC
			}
			out = append(out, s.otherKeyPEM(kt)...)
			replaced = true
			continue
		}
		out = append(out, pem.EncodeToMemory(b)...)
	}
	if !replaced {
		out = append(out, s.otherKeyPEM(EC)...)
	}
	return out
}

// otherKeyPEM returns a key of type k that belongs to no certificate (for the
// mismatch fault), made once per type.
func (s *Server) otherKeyPEM(k KeyType) []byte {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if p := s.otherKeys[k]; p != nil {
		return p
	}
	_, p, err := GenerateKey(k)
	if err != nil {
		return nil
	}
	s.otherKeys[k] = p
	return p
}

// hugeFile pads a file with copies of its first certificate to over 1 MiB.
func hugeFile(file []byte) []byte {
	var filler []byte
	for b := range pemBlocks(file) {
		if b.Type == "CERTIFICATE" {
			filler = pem.EncodeToMemory(b)
			break
		}
	}
	if filler == nil {
		junk := make([]byte, 3000)
		_, _ = rand.Read(junk)
		filler = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: junk})
	}
	var buf bytes.Buffer
	buf.Grow(hugeSize + len(filler) + len(file))
	for buf.Len() <= hugeSize {
		buf.Write(filler)
	}
	buf.Write(file)
	return buf.Bytes()
}
