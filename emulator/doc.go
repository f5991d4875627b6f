// Package emulator is an in-process emulator of NHN Cloud Certificate Manager
// and its User Access Key token service, FOR TESTS AND DEMOS ONLY.
//
// It is not NHN Cloud, it is not affiliated with NHN, it keeps everything in
// memory, its certificates are signed by throwaway test CAs, and it must never
// be put where a real NHN endpoint is expected in production. Use it with
// net/http/httptest:
//
//	s := emulator.New(emulator.Options{AppKey: "k", AccessKeyID: "id", SecretAccessKey: "secret"})
//	ts := httptest.NewServer(s)
//	defer ts.Close()
//
// or run it as a separate process with cmd/nhncert-emulator and drive it
// through the admin API (see Admin).
//
// # What it speaks
//
// One handler (Server.ServeHTTP) serves:
//
//   - POST /oauth2/token/create: the User Access Key token service
//     (application/x-www-form-urlencoded, HTTP Basic
//     AccessKeyID:SecretAccessKey, grant_type=client_credentials), answering
//     {"access_token":..,"token_type":"Bearer","expires_in":<seconds>}.
//   - GET /certmanager/v1.3/appkeys/{appKey}/certificates[/{certificateName}/files]
//     with X-NHN-AUTHORIZATION: Bearer <token>.
//   - GET /certmanager/v1.1/appkeys/{appKey}/certificates[/{certificateName}/files]
//     with X-TC-AUTHENTICATION-ID and X-TC-AUTHENTICATION-SECRET.
//   - /_emulator/...: the admin API (JSON), never affected by faults or latency.
//
// List and file answers follow NHN's published API documents (v1.3 public
// English, v1.1 government Korean): the JSON header
// {"resultCode","resultMessage","isSuccessful"}, the list body
// {"totalCount","totalPage","currentPage","pageSize","data"}, "domains" and
// "certificateId" (a number, kept when a file is replaced) only in v1.3 list
// items, the v1.3 download by ID (GET .../certificates/{certificateId}/certificate-files,
// 52009 "Certificate id does not exist." with HTTP 404 for an unknown ID),
// result codes 52000..52009 with the documented messages (ResultMessages),
// and the file download as application/octet-stream with
// Content-Disposition: attachment; filename="..." (plus RFC 6266's
// filename*, UTF-8 percent-encoded, for a name that is not ASCII). A name is
// free text (spaces, Hangul, punctuation): the path is split on '/' as sent
// and each segment percent-decoded once, as an HTTP server hands a path
// parameter over, so "%2F" inside a name is part of the name.
//
// # Assumptions (not stated by NHN's documents)
//
//   - Gateway and authentication errors (bad token, bad key headers, bad token
//     request, unknown path, wrong method, 503/500/429 faults) are answered
//     with the NHN JSON header shape and the HTTP status as resultCode:
//     {"header":{"isSuccessful":false,"resultCode":401,"resultMessage":"..."}}.
//     The real gateway's error bodies may differ; clients should rely on the
//     HTTP status for these.
//   - An unknown appKey is answered with HTTP 403 in that same shape (after
//     authentication succeeded).
//   - Invalid list parameters (pageSize or pageNum not a positive integer,
//     all not true/false, status not ALL/EXPIRED/UNEXPIRED) give HTTP 400.
//   - all=true returns every matching certificate on page 1, ignoring
//     pageSize, pageNum and Options.MaxPageSize; body.pageSize then reports
//     the number of items (or the requested page size when there are none).
//   - Dates ("YYYY-MM-DD") are UTC. A certificate is EXPIRED when its
//     expirationDate is before today (UTC, per Options.Now).
//   - The list is sorted by certificate name.
//
// Certificates are added with Server.Put, Server.PutChain, Server.Seed,
// Server.SeedDemo or the admin API; GenerateChain and NewCA make test chains
// in any of the key encodings seen in NHN files (KeyType), and
// FileOptions.KeyPassphrase (admin: key_passphrase) encrypts the key as NHN
// holds one uploaded with a passphrase (PKCS#8 PBES2 or the legacy PEM form).
package emulator
