package nhn

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// Certificate is one entry of NHN's certificate list, as NHN sends it.
type Certificate struct {
	// ID is NHN's certificateId: a JSON number in today's v1.3 list,
	// absent from older answers (and from v1.1's so far). json.Number
	// keeps an absent ID apart from 0, and also takes an ID sent as a
	// numeric string.
	ID                 json.Number `json:"certificateId,omitempty"`
	Name               string      `json:"certificateName"`
	Authority          string      `json:"authority"`
	Domains            []string    `json:"domains"`
	SignatureAlgorithm string      `json:"signatureAlgorithm"`
	FileCreationDate   string      `json:"fileCreationDate"`
	ExpirationDate     string      `json:"expirationDate"`
}

// CertificateID returns NHN's certificateId, and false when the list gave
// none (or one that is not a whole number, which is then left out rather
// than shown wrong).
func (c *Certificate) CertificateID() (int64, bool) {
	if c == nil || c.ID == "" {
		return 0, false
	}
	id, err := strconv.ParseInt(string(c.ID), 10, 64)
	return id, err == nil
}

// PathName percent-encodes a valid name as exactly one URL path segment.
// url.PathEscape escapes '*' too; NHN's console links wildcard names with
// '*' as it is, and that is what NHN has always been sent, so '*' stays.
// url.PathEscape leaves '+' as it is, which some decoders (form decoding,
// older proxies) read as a space: '+' goes as %2B, which every decoder
// reads as '+'.
func PathName(name string) string {
	parts := strings.Split(name, "*")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(url.PathEscape(p), "+", "%2B")
	}
	return strings.Join(parts, "*")
}
