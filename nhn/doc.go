// Package nhn is a client of NHN Cloud Certificate Manager's API: it lists
// the certificates of an app key and downloads their files.
//
// It speaks both API versions: v1.3, which authenticates with a User
// Access Key token (issued once, shared by concurrent callers, renewed
// before it expires, reissued when NHN rejects it), and v1.1, which sends
// the key in two headers. A list is read page by page, in parallel, and
// merged into one list sorted by name. A file is downloaded by its
// certificate's name (see Client.DownloadFile for why not by ID). Each
// call is retried on 5xx, 429 and transport errors, with backoff, jitter
// and Retry-After, inside a bound per attempt; answers are read up to a
// size bound. What is not a success comes back as an *Error naming the
// operation, the HTTP status and NHN's result code, never a credential,
// a token or a URL.
//
// The package knows nothing of Vault: the engine hands it a Config, an
// Observer to count the requests, and checks names itself before it asks.
package nhn
