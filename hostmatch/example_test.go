package hostmatch_test

import (
	"fmt"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/hostmatch"
)

func Example() {
	host, err := hostmatch.Normalize("WWW.Example.com.")
	if err != nil {
		panic(err)
	}
	fmt.Println(host, hostmatch.Covers("*.example.com", host, true), hostmatch.Covers("*.example.com", host, false))

	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	cands := []hostmatch.Candidate{
		{Name: "example.com", ID: 11, HasID: true, NotBefore: now.AddDate(0, -6, 0), NotAfter: now.AddDate(0, 1, 0)},
		{Name: "example.com-2027", ID: 12, HasID: true, NotBefore: now.AddDate(0, 0, -1), NotAfter: now.AddDate(1, 0, 0)},
	}
	fmt.Println(cands[hostmatch.Choose(cands, now).Best].Name)
	// Output:
	// www.example.com true false
	// example.com-2027
}
