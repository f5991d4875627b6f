package nhncert

import (
	"context"
	"errors"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// The engine's errors, and how each reaches the caller: certError maps
// them to 404, 502 and 504 in one place.

// errCertNotFound means NHN does not know the name (52000, 52001).
var errCertNotFound = errors.New("certificate not found")

// errBadStoredEntry means a cache entry in storage cannot be decoded; it is
// ignored and downloaded again.
var errBadStoredEntry = errors.New("unreadable cache entry")

// certError maps a lookup failure to what the caller sees: 404 for a name
// NHN does not know, 502 for anything NHN did or sent (a file whose
// encrypted key the engine cannot open included).
func certError(err error) error {
	var ue *nhn.Error
	var be *certfile.Error
	var ek *certfile.KeyError
	switch {
	case errors.Is(err, errCertNotFound):
		return logical.CodedError(http.StatusNotFound, "certificate not found in NHN Certificate Manager")
	case errors.Is(err, errConfigChanged):
		return logical.CodedError(http.StatusServiceUnavailable, err.Error()+"; read again")
	case errors.As(err, &ue), errors.As(err, &be), errors.As(err, &ek):
		// An encrypted key that cannot be opened is the file NHN holds
		// failing to serve, as a damaged one does; its text says what to
		// write where.
		return logical.CodedError(http.StatusBadGateway, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return logical.CodedError(http.StatusGatewayTimeout, "the request ended before NHN Certificate Manager answered")
	default:
		return err
	}
}
