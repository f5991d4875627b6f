package certfile_test

import (
	"fmt"

	"github.com/nhncert/vault-plugin-secrets-nhncert/certfile"
	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

// A certificate file, in whatever order its blocks come, is read as OpenSSL
// reads it: the leaf that matches the key, and its chain in signing order.
func Example() {
	ca, err := emulator.NewCA(1) // one intermediate under a root the file leaves out
	if err != nil {
		panic(err)
	}
	chain, err := emulator.GenerateChain(emulator.ChainOptions{CommonName: "www.example.com", CA: ca, KeyType: emulator.EC})
	if err != nil {
		panic(err)
	}
	b, err := certfile.Parse(chain.PEMFile(emulator.FileOptions{}), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("leaf:", b.Leaf.Subject.CommonName)
	for _, c := range b.Chain {
		fmt.Println("issued by:", c.Subject.CommonName)
	}
	fmt.Println("key:", b.KeyType, b.KeyBlock.Type)
	// Output:
	// leaf: www.example.com
	// issued by: NHN Cloud Emulator Test Intermediate CA 1 (NOT TRUSTED)
	// key: ec EC PRIVATE KEY
}
