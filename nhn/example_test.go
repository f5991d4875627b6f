package nhn_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
	"github.com/nhncert/vault-plugin-secrets-nhncert/nhn"
)

// A client lists an app key's certificates and downloads one file by name;
// here against the NHN emulator, as the engine's tests do.
func Example() {
	emu := emulator.New(emulator.Options{AppKey: "app", AccessKeyID: "id", SecretAccessKey: "secret"})
	for _, name := range []string{"www.example.com", "*.example.com"} {
		chain, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: name})
		if err != nil {
			panic(err)
		}
		emu.PutChain(name, chain, emulator.FileOptions{})
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()

	c := nhn.New(nhn.Config{
		APIVersion: nhn.V13, Endpoint: srv.URL, AuthEndpoint: srv.URL,
		AppKey: "app", AccessKeyID: "id", SecretAccessKey: "secret",
		Timeout: 5 * time.Second, UserAgent: "example",
	})
	defer c.Close()

	ctx := context.Background()
	certs, err := c.ListCertificates(ctx, "ALL")
	if err != nil {
		panic(err)
	}
	for _, cert := range certs {
		fmt.Println(cert.Name, "->", nhn.PathName(cert.Name))
	}
	file, err := c.DownloadFile(ctx, "www.example.com")
	fmt.Println(len(file) > 0, err)
	_, err = c.DownloadFile(ctx, "missing.example.com")
	fmt.Println(nhn.IsNotFound(err))
	// Output:
	// *.example.com -> *.example.com
	// www.example.com -> www.example.com
	// true <nil>
	// true
}
