// Command vault-plugin-secrets-nhncert is the nhncert secrets engine as a
// Vault external plugin.
package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	nhncert "github.com/nhncert/vault-plugin-secrets-nhncert"
)

func main() {
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsConfig := apiClientMeta.GetTLSConfig()
	tlsProviderFunc := api.VaultPluginTLSProvider(tlsConfig)

	go watchParent(os.Getppid, parentPoll, nil, func() {
		hclog.New(&hclog.LoggerOptions{}).Error("the Vault that started this plugin is gone; exiting")
		os.Exit(1)
	})

	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: nhncert.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
