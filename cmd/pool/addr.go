package main

import (
	"fmt"

	"github.com/pool-go/pool"
	"github.com/spf13/cobra"
)

func newAddrCmd() *cobra.Command {
	var (
		check, key  string
		org, subnet uint64
	)
	cmd := &cobra.Command{
		Use:   "addr (FILE | --key PUBKEY | --check ADDRESS)",
		Short: "Print a node's address, or check a typed address",
		Long: `addr prints the POOL address of an identity file or of a public key, or
checks an address someone typed or pasted.

An address is 256 bits written as five hex groups:

  pool:TTTTVVVV-OOOOOOOOOOOOOOOO-SSSSSSSSSSSSSSSS-NNNNNNNNNNNNNNNN-CCCCCCCC
       type+ver  organization     subnet           node ID          checksum

The node ID is the first 8 bytes of SHA-256 of the public key; the last
group is a CRC-32 that catches any single mistyped digit and any two
swapped neighbours. An address names a node but does not authenticate it:
pin and allow peers by their full public key.

Examples:

  pool addr node.key                     # address of an identity file
  pool addr --key 9aB3...Q=              # address of a public key
  pool addr --check pool:00010001-...    # prints "ok", or why it is wrong

The address is always alone on the last line of output.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			modes := len(args)
			if check != "" {
				modes++
			}
			if key != "" {
				modes++
			}
			if modes != 1 {
				return usagef("addr needs exactly one of FILE, --key PUBKEY or --check ADDRESS")
			}
			if check != "" && (cmd.Flags().Changed("org") || cmd.Flags().Changed("subnet")) {
				return usagef("--org and --subnet do not apply to --check")
			}
			w := cmd.OutOrStdout()
			switch {
			case check != "":
				a, err := pool.ParseAddress(check)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "org %d, subnet %d, node ID %x\n", a.Org(), a.Subnet(), a.NodeID())
				fmt.Fprintln(w, "ok")
				return nil
			case key != "":
				pub, err := pool.ParsePublicKey(key)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, pool.NewAddress(pub, org, subnet))
				return nil
			default:
				id, err := pool.LoadIdentity(args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "public key: %s\n", id.Public)
				fmt.Fprintln(w, pool.NewAddress(id.Public, org, subnet))
				return nil
			}
		},
	}
	cmd.Flags().StringVar(&check, "check", "", "validate ADDRESS (type, version and checksum) instead of printing one")
	cmd.Flags().StringVar(&key, "key", "", "print the address of public key PUBKEY (base64 or hex)")
	addAddressFlags(cmd, &org, &subnet)
	return cmd
}
