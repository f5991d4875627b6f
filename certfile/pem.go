package certfile

import (
	"bytes"
	"encoding/base64"
)

// The PEM blocks of a certificate file, read the way OpenSSL 3 reads them
// (PEM_read_bio, as `openssl x509`, `openssl pkey` and servers built on
// OpenSSL call it), not the way Go's encoding/pem does. Certificate files
// are written by people and their tools, and the contract promises that a
// file OpenSSL reads is readable here; the two readers differ on a few
// points that real files hit:
//
//   - a UTF-8 byte order mark before a BEGIN line (Windows editors): Go
//     skips the block, OpenSSL strips the mark from the first line it reads
//     for a block;
//   - a block OpenSSL cannot decode (bad base64, a blank line inside,
//     RFC 1421 headers such as "Comment:", a cut-off END line) is skipped
//     by OpenSSL's tools, which go on to the next block; Go's pem.Decode
//     either takes such a block (headers, blank lines) or skips it;
//   - base64 stops at the first '-' (OpenSSL's legacy end-of-data mark), so
//     a block whose END line is indented or missing swallows the text up to
//     the next END line of its type.
//
// TestParseBundleAsOpenSSLReadsIt checks this reader against the openssl
// binary on a few hundred generated variations of real files.

// maxPEMBlocks bounds the BEGIN lines read in one file. A block that
// fails is read again from right after its BEGIN line, so a file of many
// BEGIN lines without END lines would be read once per BEGIN line; real
// files hold a handful of blocks.
const maxPEMBlocks = 2 * maxFileCertificates

// pemLineSize is how much of a line OpenSSL's PEM reader takes at a time
// (LINESIZE 255 in crypto/pem/pem_lib.c, less the NUL); longer lines are
// read in pieces.
const pemLineSize = 254

// pemBlock is one block that OpenSSL's PEM reader reads: its label, its
// RFC 1421 headers as text (empty when it has none) and its decoded bytes.
type pemBlock struct {
	Type    string
	Headers string
	Bytes   []byte
}

// scanPEM reads every PEM block of data as OpenSSL's tools do and hands
// each one that decodes to use, which says whether it could use it. After
// a block that does not decode, or that use refuses (RFC 1421 headers, DER
// that is not what its label says), OpenSSL's tools look for the next
// BEGIN line from right after the failed one: a block cut off before its
// END line does not take the next block down with it. It returns how many
// blocks began but did not decode, and false when it stopped after
// maxPEMBlocks BEGIN lines.
func scanPEM(data []byte, use func(pemBlock) bool) (undecodable int, complete bool) {
	r := &pemReader{data: data}
	for begins := 0; ; begins++ {
		name, ok := r.beginLine()
		if !ok {
			return undecodable, true
		}
		if begins == maxPEMBlocks {
			return undecodable, false
		}
		afterBegin := r.off
		b, ok := r.block(name)
		if !ok {
			undecodable++
		}
		if !ok || !use(b) {
			r.off = afterBegin
		}
	}
}

// pemReader hands out the file the way BIO_gets does: at most pemLineSize
// bytes at a time, up to and including a '\n'.
type pemReader struct {
	data []byte
	off  int
}

func (r *pemReader) gets() ([]byte, bool) {
	if r.off >= len(r.data) {
		return nil, false
	}
	rest := r.data[r.off:]
	n := min(len(rest), pemLineSize)
	if i := bytes.IndexByte(rest[:n], '\n'); i >= 0 {
		n = i + 1
	}
	r.off += n
	return rest[:n], true
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// sanitizePEMLine is OpenSSL's sanitize_line in PEM_FLAG_EAY_COMPATIBLE
// mode: a BOM dropped from the first line of a block's search, trailing
// bytes up to ' ' (and, as a signed char compares, from 0x80 up) dropped.
func sanitizePEMLine(line []byte, first bool) []byte {
	if first && len(line) > 3 && bytes.HasPrefix(line, utf8BOM) {
		line = line[3:]
	}
	for len(line) > 0 && (line[len(line)-1] <= ' ' || line[len(line)-1] >= 0x80) {
		line = line[:len(line)-1]
	}
	return line
}

// beginLine skips to the next BEGIN line and returns its label.
func (r *pemReader) beginLine() (string, bool) {
	first := true
	for {
		raw, ok := r.gets()
		if !ok {
			return "", false
		}
		line := sanitizePEMLine(raw, first)
		first = false
		if len(line) >= len("-----BEGIN ")+len("-----") && bytes.HasPrefix(line, []byte("-----BEGIN ")) && bytes.HasSuffix(line, []byte("-----")) {
			return string(line[len("-----BEGIN ") : len(line)-len("-----")]), true
		}
	}
}

// block reads a block's headers and data up to its END line, as OpenSSL's
// get_header_and_data does, and decodes it; false when OpenSSL would fail
// on it.
func (r *pemReader) block(name string) (pemBlock, bool) {
	const (
		maybeHeader = iota // nothing seen yet that says whether there are headers
		inHeader           // a line with ':' came first: headers until a blank line
		postHeader         // after the blank line: data, in lines of at most 64
	)
	state := maybeHeader
	var first, second []byte // what goes before and after a blank line
	partial, shortSeen := false, false
	for {
		raw, ok := r.gets()
		if !ok {
			return pemBlock{}, false // no END line
		}
		prevPartial := partial
		partial = len(raw) == pemLineSize && raw[len(raw)-1] != '\n'
		if state == maybeHeader && bytes.IndexByte(raw, ':') >= 0 {
			state = inHeader
		}
		line := sanitizePEMLine(raw, false)
		if len(line) == 0 {
			if prevPartial {
				continue // the end of a long line, not a blank one
			}
			if state == postHeader {
				return pemBlock{}, false // a second blank line
			}
			state = postHeader
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("-----END ")); ok {
			if string(rest) != name+"-----" {
				return pemBlock{}, false
			}
			break
		}
		if shortSeen {
			return pemBlock{}, false // a short line not at the end of the data
		}
		if state == postHeader {
			second = append(append(second, line...), '\n')
			// Only data after a blank line has the 64-column rule.
			if len(line) > 64 {
				return pemBlock{}, false
			}
			shortSeen = len(line) < 64
		} else {
			first = append(append(first, line...), '\n')
		}
	}
	headers, body := first, second
	if state == maybeHeader {
		headers, body = nil, first
	}
	der, ok := decodePEMBase64(body)
	if !ok {
		return pemBlock{}, false
	}
	return pemBlock{Type: name, Headers: string(headers), Bytes: der}, true
}

// decodePEMBase64 decodes as EVP_DecodeUpdate does: spaces, tabs, CR and LF
// are skipped, '-' ends the data, anything else not base64 is an error, and
// so is base64 after '=' padding.
func decodePEMBase64(text []byte) ([]byte, bool) {
	clean := make([]byte, 0, len(text))
	pad := 0
	for _, c := range text {
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '-':
			return finishBase64(clean)
		case c == '=':
			pad++
			if pad > 2 {
				return nil, false
			}
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			if pad > 0 {
				return nil, false
			}
		default:
			return nil, false
		}
		clean = append(clean, c)
	}
	return finishBase64(clean)
}

func finishBase64(clean []byte) ([]byte, bool) {
	if len(clean)%4 != 0 {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}
