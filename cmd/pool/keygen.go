package main

import (
	"fmt"

	"github.com/pool-go/pool"
	"github.com/spf13/cobra"
)

func newKeygenCmd() *cobra.Command {
	var (
		out         string
		force       bool
		org, subnet uint64
	)
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Generate a node identity key and print its public key and address",
		Long: `keygen generates a new X25519 identity key pair from the operating system's
random source and saves the private key to FILE with mode 0600 (readable by
you only). The file appears atomically and an existing file is never
replaced unless --force is given.

It prints the public key, which you give to the peers that should accept
this node (their allow-lists) or pin it (their dial commands), and then the
node's address alone on the last line, so scripts can take it with tail -n1.

Example:

  $ pool keygen --out node.key
  saved identity to node.key (mode 0600)
  public key: 9aB3...Q=
  pool:00010001-0000000000000000-0000000000000000-5f1c2a7e9b0d4c33-8e21f0a4`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("keygen needs --out FILE (where to save the private key)")
			}
			id, err := pool.GenerateIdentity()
			if err != nil {
				return err
			}
			if err := id.Save(out, force); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "saved identity to %s (mode 0600)\n", out)
			fmt.Fprintf(w, "public key: %s\n", id.Public)
			fmt.Fprintln(w, pool.NewAddress(id.Public, org, subnet))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "file to save the private key to (required)")
	f.BoolVarP(&force, "force", "f", false, "replace FILE if it exists")
	addAddressFlags(cmd, &org, &subnet)
	return cmd
}

// addAddressFlags adds the flags that choose an address's org and subnet.
func addAddressFlags(cmd *cobra.Command, org, subnet *uint64) {
	cmd.Flags().Uint64Var(org, "org", 0, "organization/network ID of the address (decimal or 0x hex)")
	cmd.Flags().Uint64Var(subnet, "subnet", 0, "subnet/segment ID of the address (decimal or 0x hex)")
}
